#!/usr/bin/env bash
# Stops the control plane that test/env/kube/up.sh started in DIR and removes
# DIR. Only processes named by DIR's pid files, and whose command line shows
# they run for DIR, are signalled. A missing DIR is already down.
#
#   bash test/env/kube/down.sh DIR
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/../lib/procs.sh
source "$here/../lib/procs.sh"

log() { printf 'kube/down: %s\n' "$*" >&2; }

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
[[ -d "$1" ]] || exit 0
dir="$(cd "$1" && pwd)"

if [[ ! -e "$dir/.quarantine-kube" ]]; then
  log "$dir was not made by up.sh; leaving it alone"
  exit 1
fi

# The apiserver goes first so that it does not spend its shutdown retrying a
# vanished etcd.
proc_stop_ours "$dir" kube-apiserver
proc_stop_ours "$dir" etcd
rm -rf "$dir"
