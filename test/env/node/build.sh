#!/usr/bin/env bash
# Builds kubelet, kube-scheduler, kube-controller-manager and the pause
# program from the Go module beside this script and prints the directory that
# holds them. Cached like test/env/kube/build.sh: under a key made from
# everything that decides the binaries' content, so a warm run costs a hash.
#
#   bash test/env/node/build.sh            -> /path/to/cache/node/<key>/bin
#
# QUARANTINE_CACHE_DIR moves the cache (default ~/.cache/quarantine-operator).
# Only the bin directory goes to stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf 'node/build: %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || {
  log "go is not on PATH; it is needed to build the kubelet and its controllers"
  exit 1
}

# Stamped with the real release, as the API server is: the kubelet reports it
# as the node's version and the scheduler checks it against the server's.
k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ { print $2; exit }' "$here/go.mod")"
if [[ ! "$k8s_version" =~ ^v1\.([0-9]+)\.[0-9]+$ ]]; then
  log "cannot read the k8s.io/kubernetes version from $here/go.mod"
  exit 1
fi
k8s_minor="${BASH_REMATCH[1]}"
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor -X $pkg.gitTreeState=clean"
done
ldflags="-s -w$stamp"

# The same build settings as test/env/kube/build.sh, so that Go's build cache
# serves the packages the two modules share.
export CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=readonly GOTOOLCHAIN=local

key="$(
  {
    sed 's|//.*||' "$here/go.mod"
    cat "$here/go.sum" "$here/pause/main.go"
    printf '%s\n' "$ldflags" "$CGO_ENABLED" "$(go env GOOS GOARCH)"
  } | sha256sum | cut -c1-16
)"
cache_root="${QUARANTINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/quarantine-operator}/node"
out="$cache_root/$key"
bin="$out/bin"
binaries=(kubelet kube-scheduler kube-controller-manager pause)

have_binaries() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}

if have_binaries; then
  log "cached: $bin"
  printf '%s\n' "$bin"
  exit 0
fi

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if have_binaries; then
  log "cached (built by a concurrent run): $bin"
  printf '%s\n' "$bin"
  exit 0
fi

staging="$(mktemp -d "$out/.build.XXXXXX")"
chmod 755 "$staging"
trap 'rm -rf "$staging"' EXIT

log "building kubelet, kube-scheduler, kube-controller-manager $k8s_version into $bin (a first build with empty Go caches takes tens of minutes)"
start=$SECONDS
(
  cd "$here"
  go mod download
  go build -trimpath -ldflags "-s -w" -o "$staging/pause" ./pause
  # The kubelet first: it shares least with the API server, which may be
  # building at the same time on a fresh machine.
  for cmd in kubelet kube-controller-manager kube-scheduler; do
    log "go build $cmd"
    go build -trimpath -ldflags "$ldflags" -o "$staging/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
) >&2

for cmd in kube-scheduler kube-controller-manager kubelet; do "$staging/$cmd" --version >&2; done

rm -rf "$bin"
mv "$staging" "$bin"
trap - EXIT
log "built in $((SECONDS - start))s: $bin"
printf '%s\n' "$bin"
