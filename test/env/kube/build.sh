#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module beside this script and
# prints the directory that holds them. The binaries are cached under a key
# made from everything that decides their content, so a warm run costs only a
# hash, and a change to go.mod, go.sum or the flags below rebuilds.
#
#   bash test/env/kube/build.sh            -> /path/to/cache/kube/<key>/bin
#
# QUARANTINE_CACHE_DIR moves the cache (default ~/.cache/quarantine-operator).
# Only the bin directory goes to stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf 'kube/build: %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || {
  log "go is not on PATH; it is needed to build kube-apiserver and etcd"
  exit 1
}

# The published k8s.io/kubernetes module carries placeholder version strings;
# release builds stamp them, and clients such as helm read /version, so stamp
# the real release taken from go.mod.
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

# Static binaries that need no C toolchain, built by this machine's own Go,
# and a build that fails rather than edits go.mod/go.sum: whatever GOFLAGS or
# go.work the caller has must not change what gets built from the committed
# files.
export CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=readonly GOTOOLCHAIN=local

# Comments in go.mod do not change the binaries, so they do not change the key.
key="$(
  {
    sed 's|//.*||' "$here/go.mod"
    cat "$here/go.sum"
    printf '%s\n' "$ldflags" "$CGO_ENABLED" "$(go env GOOS GOARCH)"
  } | sha256sum | cut -c1-16
)"
cache_root="${QUARANTINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/quarantine-operator}/kube"
out="$cache_root/$key"
bin="$out/bin"

have_binaries() { [[ -x "$bin/kube-apiserver" && -x "$bin/etcd" ]]; }

if have_binaries; then
  log "cached: $bin"
  printf '%s\n' "$bin"
  exit 0
fi

mkdir -p "$out"
# Two test runs starting together must not compile twice or see a half-written
# binary: one builds while the other waits, then finds the cache filled.
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

log "building kube-apiserver $k8s_version and etcd into $bin (a first build with empty Go caches takes several minutes)"
start=$SECONDS
(
  cd "$here"
  log "go mod download"
  go mod download
  log "go build etcd"
  go build -trimpath -ldflags "$ldflags" -o "$staging/etcd" go.etcd.io/etcd/server/v3
  log "go build kube-apiserver"
  go build -trimpath -ldflags "$ldflags" -o "$staging/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
) >&2

"$staging/etcd" --version >&2
"$staging/kube-apiserver" --version >&2

rm -rf "$bin"
mv "$staging" "$bin"
trap - EXIT
log "built in $((SECONDS - start))s: $bin"
printf '%s\n' "$bin"
