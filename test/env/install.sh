#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages behind the real services the tests use
# (and rsvg-convert, which renders the benchmark plots; promtool, from Debian's
# prometheus package, which checks the chart's alert rules; chromium, which opens a case report
# headless and takes its screenshot; containerd and runc, the test node's container runtime).
# Only missing packages are installed, so a second run costs one dpkg query.
set -euo pipefail

want=(rabbitmq-server postgresql amqp-tools ceph-mon ceph-osd ceph-common openssl librsvg2-bin prometheus chromium containerd runc)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "install: all packages present" >&2; exit 0; }

if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install: missing packages (${missing[*]}) and not root, no sudo: install them and rerun" >&2; exit 1
  fi
else SUDO=; fi

echo "install: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Daemons are started by test/env/up.sh, never by the package scripts (no init system in CI containers).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
