#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module beside this script and
# prints the directory that holds them. The binaries are cached under a key
# made from everything that decides their content, so a warm run costs only a
# hash, and a change to go.mod, go.sum or the flags in test/env/lib/go-build.sh
# rebuilds.
#
#   bash test/env/kube/build.sh            -> /path/to/cache/kube/<key>/bin
#
# QUARANTINE_CACHE_DIR moves the cache (default ~/.cache/quarantine-operator).
# Only the bin directory goes to stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/../lib/go-build.sh
source "$here/../lib/go-build.sh"

log() { printf 'kube/build: %s\n' "$*" >&2; }

go_build_setup "kube-apiserver and etcd"
binaries=(kube-apiserver etcd)
go_build_cache kube

log "building kube-apiserver $k8s_version and etcd into $bin (a first build with empty Go caches takes several minutes)"
(
  cd "$here"
  log "go mod download"
  go mod download
  log "go build etcd"
  go_build etcd go.etcd.io/etcd/server/v3
  log "go build kube-apiserver"
  go_build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
) >&2

"$staging/etcd" --version >&2
"$staging/kube-apiserver" --version >&2

go_build_publish
