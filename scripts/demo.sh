#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine and runs the operator standalone on the
# embedded SQLite ledger.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
Q=bin/quarantine
DB=${QUARANTINE_DB:-sqlite:./quarantine.db}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "quarantine --help"
$Q --help

say "quarantine run --db $DB --manifests ${QUARANTINE_MANIFESTS:-examples/standalone}"
set +e
$Q --db "$DB" run --manifests "${QUARANTINE_MANIFESTS:-examples/standalone}"
rc=$?
set -e
say "quarantine run exited with $rc"
exit 0
