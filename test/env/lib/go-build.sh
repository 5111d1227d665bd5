# shellcheck shell=bash disable=SC2154  # here, binaries and log() are the caller's
# Sourced by test/env/kube/build.sh and test/env/node/build.sh: builds
# Kubernetes binaries from the Go module in $here with a stamped release
# version, and caches them under a key made from everything that decides their
# content, so a warm run costs only a hash.
#
# The caller sets `here` (the module's directory), defines log(), and then:
#
#   go_build_setup "the kubelet and its controllers"   # toolchain, ldflags, Go env
#   binaries=(kubelet pause)                            # what a full cache holds
#   go_build_cache node "$here/pause/main.go"           # key, out, bin; exits if cached,
#                                                       # else locks and makes $staging
#   ( cd "$here"; go mod download; go_build kubelet k8s.io/kubernetes/cmd/kubelet ) >&2
#   go_build_publish                                    # staging -> bin, prints bin
#
# QUARANTINE_CACHE_DIR moves the cache (default ~/.cache/quarantine-operator).
# Only the bin directory goes to stdout; progress goes to stderr.

# go_build_setup WHAT: stops unless go is on PATH (WHAT says what it is needed
# for), sets k8s_version and ldflags, and exports the build settings.
go_build_setup() {
  command -v go >/dev/null 2>&1 || {
    log "go is not on PATH; it is needed to build $1"
    exit 1
  }

  # The published k8s.io/kubernetes module carries placeholder version strings;
  # release builds stamp them, and clients such as helm read /version (the
  # kubelet reports it as the node's version and the scheduler checks it
  # against the server's), so stamp the real release taken from go.mod.
  k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ { print $2; exit }' "$here/go.mod")"
  if [[ ! "$k8s_version" =~ ^v1\.([0-9]+)\.[0-9]+$ ]]; then
    log "cannot read the k8s.io/kubernetes version from $here/go.mod"
    exit 1
  fi
  local k8s_minor="${BASH_REMATCH[1]}" stamp="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor -X $pkg.gitTreeState=clean"
  done
  ldflags="-s -w$stamp"

  # Static binaries that need no C toolchain, built by this machine's own Go,
  # and a build that fails rather than edits go.mod/go.sum: whatever GOFLAGS or
  # go.work the caller has must not change what gets built from the committed
  # files. Both modules use the same settings, so that Go's build cache serves
  # the packages they share.
  export CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=readonly GOTOOLCHAIN=local
}

# go_build_key [FILE...]: the cache key of the module in $here, its ldflags and
# build settings, and any further source FILEs. Comments in go.mod do not
# change the binaries, so they do not change the key.
go_build_key() {
  {
    sed 's|//.*||' "$here/go.mod"
    cat "$here/go.sum" "$@"
    printf '%s\n' "$ldflags" "$CGO_ENABLED" "$(go env GOOS GOARCH)"
  } | sha256sum | cut -c1-16
}

# True when every name in `binaries` is an executable in $bin.
go_build_have_binaries() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}

# go_build_cache NAME [FILE...]: sets key, out and bin for the cache directory
# NAME. If the binaries are there, prints $bin and exits; otherwise takes the
# cache's lock, makes $staging (removed if the script fails) and returns.
go_build_cache() {
  local name="$1"
  shift
  key="$(go_build_key "$@")"
  local cache_root="${QUARANTINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/quarantine-operator}/$name"
  out="$cache_root/$key"
  bin="$out/bin"

  if go_build_have_binaries; then
    log "cached: $bin"
    printf '%s\n' "$bin"
    exit 0
  fi

  mkdir -p "$out"
  # Two test runs starting together must not compile twice or see a half-written
  # binary: one builds while the other waits, then finds the cache filled.
  exec 9>"$out/.lock"
  flock 9
  if go_build_have_binaries; then
    log "cached (built by a concurrent run): $bin"
    printf '%s\n' "$bin"
    exit 0
  fi

  staging="$(mktemp -d "$out/.build.XXXXXX")"
  chmod 755 "$staging"
  trap 'rm -rf "$staging"' EXIT
  go_build_start=$SECONDS
}

# go_build OUT PACKAGE: builds PACKAGE, stamped with $ldflags, into $staging/OUT.
go_build() {
  go build -trimpath -ldflags "$ldflags" -o "$staging/$1" "$2"
}

# Moves the finished build into $bin and prints it.
go_build_publish() {
  rm -rf "$bin"
  mv "$staging" "$bin"
  trap - EXIT
  log "built in $((SECONDS - go_build_start))s: $bin"
  printf '%s\n' "$bin"
}
