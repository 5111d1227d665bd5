#!/usr/bin/env bash
# Runs every test against real services: brings test/env up, type-checks, runs
# node's test runner, tears test/env down. The runner's summary is the last
# thing printed. QTEST_KEEP_ENV=1 leaves the services up for another run.
# Arguments, if any, replace the default test file globs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
node --version | grep -q '^v24\.' || { echo "test: Node 24 is not on PATH; run scripts/bootstrap.sh" >&2; exit 1; }

# In CI, first prove the environment comes up, goes down without leftovers, and comes up again.
if [ "${CI:-}" = true ]; then bash test/env/cycle-check.sh; fi
# A whole run includes the end-to-end test of the chart on a node, so the node comes up too.
if [ $# -eq 0 ] && [ -z "${QTEST_SERVICES:-}" ]; then export QTEST_SERVICES="amqp postgres ceph kube node"; fi
ENVFILE=$(bash test/env/up.sh)
if [ "${QTEST_KEEP_ENV:-0}" != 1 ]; then
  # Quietly, so that the test runner's summary stays the last lines of output.
  trap 'bash test/env/down.sh >test/env/down.log 2>&1 || echo "test: test/env/down.sh failed, see test/env/down.log" >&2' EXIT
fi
set -a
# shellcheck disable=SC1090
source "$ENVFILE"
set +a

echo "test: type-checking" >&2
tsc -p . --noEmit

if [ $# -gt 0 ]; then files=("$@"); else
  files=('test/unit/**/*.test.ts' 'test/integration/**/*.test.ts' 'test/e2e/**/*.test.ts'); fi
# The thread pool the operator's entry point reserves for librbd calls (operator/ceph/worker-threads.ts),
# for the tests that run the operator in their own process.
export UV_THREADPOOL_SIZE="${UV_THREADPOOL_SIZE:-128}"
# One file at a time: files share the Ceph pools (trash-mode tests arm the vms pool and adopt from its trash).
node --test --test-concurrency=1 --test-timeout=900000 "${files[@]}"
