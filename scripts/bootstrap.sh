#!/usr/bin/env bash
# Installs what the project itself needs on a Debian/Ubuntu machine: npm (to
# fetch the pinned Node 24) and the node_modules of package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "bootstrap: $*" >&2; }

if ! command -v npm >/dev/null 2>&1; then
  log "npm is missing; installing Debian's nodejs and npm (only used to fetch the pinned Node 24)"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >&2
fi

# npm ci only when the lock file changed since the last install.
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
node_modules/.bin/node --version | grep -q '^v24\.' || { log "node_modules/.bin/node is not Node 24"; exit 1; }
# bin/quarantine's compile cache: the operator then starts without Node's type stripper (operator/process-memory.ts).
node_modules/.bin/node scripts/fill-compile-cache.ts
