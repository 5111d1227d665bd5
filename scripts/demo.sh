#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine and shows the operator at work: it
# brings up RabbitMQ and a throwaway Ceph cluster (test/env), then runs
# demo/story.ts, where the operator runs standalone on its embedded SQLite
# ledger while a simulated OpenStack cloud boots, moves addresses and deletes
# VMs, and an investigator traces and exports what it kept.
#
# Everything it writes goes to $QUARANTINE_DEMO_DIR (default .demo/ in the
# repository) and stays there, with Ceph and the RabbitMQ vhost left running to
# explore; the last lines printed say how to stop them. A second run tears the
# previous one down first. Ctrl-C stops everything it started, exit code 130.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=${QUARANTINE_DEMO_DIR:-$ROOT/.demo}
MARKER=.quarantine-demo

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then B=$'\033[1m' D=$'\033[2m' R=$'\033[31m' N=$'\033[0m'; else B='' D='' R='' N=''; fi
say() { printf '%s  %s\n' "$D$(date +%H:%M:%S)$N" "$B$*$N"; }
detail() { printf '           %s\n' "$*"; }
indent() { sed -u 's/^/           /'; }

# --- stopping -------------------------------------------------------------------------------
env_started=0   # the services of $DEMO/env may be (partly) up: tear them down unless the story completed
completed=0
interrupted=0
story=

teardown() {
  say "Stopping the services this run started"
  if QTEST_STATE_DIR="$DEMO/env" bash test/env/down.sh >>"$DEMO/env-down.log" 2>&1; then
    # up.sh leaves its unfinished env file behind when it is cut short.
    rm -f "$DEMO/env/env.partial"
    rmdir "$DEMO/env" 2>/dev/null || true
    detail "Ceph cluster and RabbitMQ vhost removed (log: $DEMO/env-down.log); the files in $DEMO stay"
  else
    detail "${R}test/env/down.sh failed${N}: see $DEMO/env-down.log"
  fi
}

finish() {
  local rc=$?
  # A second Ctrl-C must not cut the teardown short; its children inherit this.
  trap '' INT TERM
  if [ "$interrupted" = 1 ]; then rc=130; fi
  if [ "$completed" != 1 ] && [ "$env_started" = 1 ]; then teardown; fi
  if [ "$completed" != 1 ] && [ "$rc" != 130 ]; then say "${R}The demo failed (exit $rc)${N}"; fi
  exit "$rc"
}
trap finish EXIT

on_signal() {
  interrupted=1
  # The story stops the operator and the simulators itself, then exits; finish() follows.
  if [ -n "$story" ]; then kill -INT "$story" 2>/dev/null || true; return; fi
  exit 130
}
trap on_signal INT TERM

# --- this machine -----------------------------------------------------------------------------
say "Setting up this machine (Node 24 and npm packages, then RabbitMQ and Ceph packages)"
bash scripts/bootstrap.sh 2>&1 | indent
bash test/env/install.sh 2>&1 | indent
NODE=$ROOT/node_modules/.bin/node

# --- the demo's directory -----------------------------------------------------------------------
if [ -e "$DEMO" ] && [ ! -e "$DEMO/$MARKER" ] && [ -n "$(ls -A "$DEMO" 2>/dev/null)" ]; then
  echo "demo: $DEMO exists and was not made by this script; set QUARANTINE_DEMO_DIR to another directory" >&2
  exit 2
fi
if [ -e "$DEMO/$MARKER" ]; then
  say "Removing the previous run's data and services ($DEMO)"
  if [ -e "$DEMO/env" ]; then
    QTEST_STATE_DIR="$DEMO/env" bash test/env/down.sh >"$DEMO/env-down.log" 2>&1 ||
      { echo "demo: could not stop the previous run's services; see $DEMO/env-down.log" >&2; exit 1; }
  fi
  rm -rf -- "$DEMO"
fi
mkdir -p "$DEMO"
DEMO=$(cd "$DEMO" && pwd)
touch "$DEMO/$MARKER"

# --- services ---------------------------------------------------------------------------------------
say "Bringing up RabbitMQ (a vhost of its own) and a throwaway Ceph cluster"
env_started=1
t0=$(date +%s)
if ! ENVFILE=$(QTEST_STATE_DIR="$DEMO/env" QTEST_SERVICES="amqp ceph" bash test/env/up.sh 2>"$DEMO/env-up.log"); then
  tail -n 20 "$DEMO/env-up.log" | indent >&2
  exit 1
fi
# Only what the run itself exported counts, not what the caller's shell may carry.
unset "${!QTEST_@}" CEPH_CONF
set -a
# shellcheck disable=SC1090
source "$ENVFILE"
set +a
detail "RabbitMQ vhost $QTEST_AMQP_VHOST on 127.0.0.1:5672"
detail "Ceph $QTEST_CEPH_DIR: pools $QTEST_CEPH_POOLS $QTEST_CEPH_QUARANTINE_POOL, users client.$QTEST_CEPH_CLOUD_ID (the cloud) and client.$QTEST_CEPH_OPERATOR_ID (the operator)"
detail "up in $(( $(date +%s) - t0 )) s (log: $DEMO/env-up.log)"

# --- the story ----------------------------------------------------------------------------------------
export QUARANTINE_DEMO_DIR=$DEMO
# In the background so that a signal to this script alone still reaches the story (see on_signal).
"$NODE" demo/story.ts &
story=$!
rc=0
wait "$story" || rc=$?
while kill -0 "$story" 2>/dev/null; do wait "$story" || rc=$?; done
story=
if [ "$interrupted" = 1 ]; then exit 130; fi
[ "$rc" = 0 ] || exit "$rc"
completed=1
