#!/usr/bin/env bash
# Tears down what test/env/up.sh started; leaves services it only reused running.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
STATE=${QTEST_STATE_DIR:-$HERE/.state}
[ -d "$STATE" ] || { echo "test/env: nothing to tear down" >&2; exit 0; }
rc=0
# The node before the API server it registered with.
if [ -f "$STATE/node-dir" ]; then bash "$HERE/node/down.sh" "$(cat "$STATE/node-dir")" || rc=1; fi
if [ -f "$STATE/kube-dir" ] && [ -x "$HERE/kube/down.sh" ]; then bash "$HERE/kube/down.sh" "$(cat "$STATE/kube-dir")" || rc=1; fi
if [ -f "$STATE/ceph-dir" ]; then bash "$HERE/ceph-down.sh" "$(cat "$STATE/ceph-dir")" || rc=1; fi
bash "$HERE/services.sh" down "$STATE" || rc=1
rm -f "$STATE/env" "$STATE/ceph-dir" "$STATE/kube-dir" "$STATE/node-dir"
rmdir "$STATE" 2>/dev/null || true
exit $rc
