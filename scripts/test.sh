#!/usr/bin/env bash
# Sets up everything on a fresh Debian/Ubuntu machine and runs all tests
# (type-check, unit, integration against real RabbitMQ, PostgreSQL, Ceph and
# kube-apiserver, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec bash test/run.sh "$@"
