#!/usr/bin/env bash
# Proves the test environment can be brought up, torn down and brought up
# again, and that teardown leaves no daemon of ours behind. CI runs it before
# the tests; it uses its own state directory so it never touches a running env.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export QTEST_STATE_DIR=${TMPDIR:-/tmp}/qop-cycle-$$
export QTEST_SERVICES=${QTEST_SERVICES:-ceph kube}
log() { echo "test/env cycle: $*" >&2; }
key=$(printf '%s' "$QTEST_STATE_DIR" | sha256sum | cut -c1-10)
ours() { pgrep -f -- "qop-(ceph|kube)-$key" || true; }

for round in 1 2; do
  bash "$HERE/up.sh" >/dev/null
  [ -n "$(ours)" ] || { log "round $round: up reported success but no daemon of ours runs"; exit 1; }
  bash "$HERE/down.sh"
  left=$(ours)
  if [ -n "$left" ]; then log "round $round: processes left after down: $left"; ps -o pid,args -p "$(echo "$left" | paste -sd,)" >&2; exit 1; fi
  log "round $round: up → down ok, nothing left running"
done
