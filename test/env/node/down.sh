#!/usr/bin/env bash
# Stops the node that test/env/node/up.sh started in DIR, undoes what the
# kubelet did to the host (sysctls, host paths, cgroups, mounts) and removes
# DIR. Only processes named by DIR's pid files or running for DIR's containerd
# socket are signalled. A missing DIR is already down.
#
#   bash test/env/node/down.sh DIR
#
# QTEST_NODE_KEEP_LOGS=1 keeps the components' logs in DIR.logs.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/../lib/procs.sh
source "$here/../lib/procs.sh"

log() { printf 'node/down: %s\n' "$*" >&2; }

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
[[ -d "$1" ]] || exit 0
dir="$(cd "$1" && pwd)"
owner_file=/tmp/qop-node.owner

if [[ ! -e "$dir/.quarantine-node" ]]; then
  log "$dir was not made by up.sh; leaving it alone"
  exit 1
fi
sock="$dir/containerd.sock"
rc=0

# Stops NAME if DIR/NAME.pid names our running NAME (test/env/lib/procs.sh).
stop() { proc_stop_ours "$dir" "$1" || rc=1; }

# The kubelet first, so that it does not restart the containers removed next.
stop kubelet
stop kube-scheduler
stop kube-controller-manager

# Every container and sandbox of the node, then containerd itself.
if pid="$(proc_pid "$dir" containerd)"; then
  ctr=(ctr --address "$sock" --namespace k8s.io)
  for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
    "${ctr[@]}" tasks kill --signal SIGKILL "$task" >/dev/null 2>&1 || true
  done
  for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
    for _ in $(seq 50); do "${ctr[@]}" tasks delete "$task" >/dev/null 2>&1 && break; sleep 0.1; done
  done
  for c in $("${ctr[@]}" containers ls -q 2>/dev/null); do "${ctr[@]}" containers delete "$c" >/dev/null 2>&1 || true; done
  proc_stop containerd "$pid" || rc=1
fi
# A shim outlives containerd; ours name DIR's socket on their command line.
for proc in /proc/[0-9]*; do
  cmd="$(tr '\0' ' ' 2>/dev/null <"$proc/cmdline")" || continue
  if [[ "$cmd" == *containerd-shim* && "$cmd" == *"$sock"* ]]; then proc_stop containerd-shim "${proc#/proc/}" || rc=1; fi
done

# Mounts under DIR, deepest first: the kubelet's bind mount of its root dir,
# pods' volumes, containers' root filesystems.
mapfile -t mounts < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-)
for m in "${mounts[@]}"; do
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || { log "cannot unmount $m"; rc=1; }
done

# The pods' cgroups, leaves first; a cgroup with a process left in it stays and is reported.
# A kubepods root that existed before up.sh (DIR/cgroups.preexisting) is kept.
for hierarchy in /sys/fs/cgroup/*/; do
  root="${hierarchy%/}/kubepods"
  [[ -d "$root" ]] || continue
  if [[ -s "$dir/cgroups.preexisting" ]] && grep -qxF "$root" "$dir/cgroups.preexisting"; then
    find "$root" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null
    [[ -n "$(find "$root" -mindepth 1 -type d -print -quit 2>/dev/null)" ]] && { log "cgroup $root has children still in use"; rc=1; }
    continue
  fi
  find "$root" -depth -type d -exec rmdir {} + 2>/dev/null
  [[ -d "$root" ]] && { log "cgroup $root is still in use"; rc=1; }
done

if [[ -s "$dir/sysctl.saved" ]]; then
  while IFS= read -r line; do
    sysctl -q -w "$line" >/dev/null || { log "cannot restore $line"; rc=1; }
  done <"$dir/sysctl.saved"
fi
if [[ -s "$dir/host-paths.created" ]]; then
  while IFS= read -r p; do
    [[ "$p" == /var/lib/kubelet || "$p" == /var/log/containers || "$p" == /var/log/pods || "$p" == /run/containerd ]] || continue
    if awk -v d="$p" '$5 == d || index($5, d "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
      log "$p still has mounts; leaving it"
      rc=1
      continue
    fi
    rm -rf "$p"
  done <"$dir/host-paths.created"
fi

if [[ "${QTEST_NODE_KEEP_LOGS:-0}" == 1 ]]; then
  mkdir -p "$dir.logs"
  cp "$dir"/*.log "$dir.logs/" 2>/dev/null || true
  log "logs kept in $dir.logs"
fi
rm -rf "$dir" || rc=1
if [[ -s "$owner_file" && "$(<"$owner_file")" == "$dir" ]]; then rm -f "$owner_file"; fi
exit $rc
