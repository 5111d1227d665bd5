#!/usr/bin/env bash
# Builds kubelet, kube-scheduler, kube-controller-manager and the pause
# program from the Go module beside this script and prints the directory that
# holds them. Cached like test/env/kube/build.sh (test/env/lib/go-build.sh):
# under a key made from everything that decides the binaries' content, so a
# warm run costs a hash.
#
#   bash test/env/node/build.sh            -> /path/to/cache/node/<key>/bin
#
# QUARANTINE_CACHE_DIR moves the cache (default ~/.cache/quarantine-operator).
# Only the bin directory goes to stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/../lib/go-build.sh
source "$here/../lib/go-build.sh"

log() { printf 'node/build: %s\n' "$*" >&2; }

go_build_setup "the kubelet and its controllers"
binaries=(kubelet kube-scheduler kube-controller-manager pause)
go_build_cache node "$here/pause/main.go"

log "building kubelet, kube-scheduler, kube-controller-manager $k8s_version into $bin (a first build with empty Go caches takes tens of minutes)"
(
  cd "$here"
  go mod download
  go build -trimpath -ldflags "-s -w" -o "$staging/pause" ./pause
  # The kubelet first: it shares least with the API server, which may be
  # building at the same time on a fresh machine.
  for cmd in kubelet kube-controller-manager kube-scheduler; do
    log "go build $cmd"
    go_build "$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
) >&2

for cmd in kube-scheduler kube-controller-manager kubelet; do "$staging/$cmd" --version >&2; done

go_build_publish
