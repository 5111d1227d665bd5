#!/usr/bin/env bash
# Proves the test environment can be brought up, torn down and brought up
# again, and that teardown leaves no daemon of ours behind. CI runs it before
# the tests; it uses its own state directory so it never touches a running env.
# With the node among the services it also proves that the host is left as it
# was found: the kubelet's sysctls, paths, cgroups and mounts.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export QTEST_STATE_DIR=${TMPDIR:-/tmp}/qop-cycle-$$
export QTEST_SERVICES=${QTEST_SERVICES:-ceph kube node}
log() { echo "test/env cycle: $*" >&2; }
key=$(printf '%s' "$QTEST_STATE_DIR" | sha256sum | cut -c1-10)
ours() { pgrep -f -- "qop-(ceph|kube|node)-$key" || true; }
# What the node changes on the host while it runs (node/up.sh); the same after down as before up.
host_state() {
  sysctl vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes
  for p in /var/lib/kubelet /var/log/containers /var/log/pods /run/containerd /sys/fs/cgroup/*/kubepods; do if [ -e "$p" ]; then echo "exists: $p"; fi; done
  grep -c "qop-node-$key" /proc/self/mountinfo || true
}
before=$(host_state)

for round in 1 2; do
  bash "$HERE/up.sh" >/dev/null
  [ -n "$(ours)" ] || { log "round $round: up reported success but no daemon of ours runs"; exit 1; }
  bash "$HERE/down.sh"
  left=$(ours)
  if [ -n "$left" ]; then log "round $round: processes left after down: $left"; ps -o pid,args -p "$(echo "$left" | paste -sd,)" >&2; exit 1; fi
  after=$(host_state)
  if [ "$after" != "$before" ]; then log "round $round: the host differs after down:"; diff <(echo "$before") <(echo "$after") >&2; exit 1; fi
  log "round $round: up → down ok, nothing left running, host as before"
done
