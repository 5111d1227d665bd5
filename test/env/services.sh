#!/usr/bin/env bash
# RabbitMQ and PostgreSQL for the tests: reuse the running ones, start them when
# they are stopped, and give every test run its own vhost and database.
# Usage: services.sh up STATE_DIR | down STATE_DIR | role STATE_DIR
# (role: both services running and the tests' PostgreSQL role made, nothing
# else; what the benchmarks need, as they make their own vhost and databases)
set -euo pipefail
cmd=${1:?usage: services.sh up|down|role STATE_DIR}
STATE=${2:?usage: services.sh up|down|role STATE_DIR}
log() { echo "services: $*" >&2; }

pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -1; }
as_postgres() { runuser -u postgres -- "$@"; }

rabbit_up() { rabbitmqctl -q status >/dev/null 2>&1; }
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }

start_rabbit() {
  rabbit_up && return 0
  log "starting RabbitMQ (loopback only)"
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 rabbitmq-server -detached >/dev/null 2>&1 || true
  # await_startup waits for the boot to finish, but only once the node answers at all.
  for _ in $(seq 1 60); do rabbit_up && break; sleep 1; done
  rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1 || { log "RabbitMQ did not start (see /var/log/rabbitmq)"; return 1; }
  touch "$STATE/rabbitmq.started-by-us"
}

start_pg() {
  pg_up && return 0
  local v; v=$(pg_version)
  [ -n "$v" ] || { log "PostgreSQL is installed but has no cluster in /etc/postgresql"; return 1; }
  log "starting PostgreSQL $v"
  pg_ctlcluster --skip-systemctl-redirect "$v" main start
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { log "PostgreSQL did not start"; return 1; }
  touch "$STATE/postgres.started-by-us"
}

ensure_role() {
  # A password role works whatever pg_hba says for 127.0.0.1 (trust here, scram on a fresh install).
  as_postgres psql -qAt -v ON_ERROR_STOP=1 -c \
    "DO \$\$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='qop_test') THEN CREATE ROLE qop_test LOGIN CREATEDB PASSWORD 'qop_test'; END IF; END\$\$;" >/dev/null
}

role() {
  mkdir -p "$STATE"
  start_rabbit
  start_pg
  ensure_role
}

up() {
  role
  local run
  if [ -f "$STATE/run-id" ]; then run=$(cat "$STATE/run-id"); else
    run=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n'); echo "$run" >"$STATE/run-id"; fi
  local vhost="qop-test-$run" db="qop_test_$run"
  if ! rabbitmqctl -q list_vhosts | grep -qx "$vhost"; then
    rabbitmqctl -q add_vhost "$vhost" >/dev/null
    rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
  fi
  if [ -z "$(as_postgres psql -qAt -c "SELECT 1 FROM pg_database WHERE datname='$db'")" ]; then
    as_postgres psql -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db OWNER qop_test" >/dev/null
  fi
  cat >"$STATE/services.env" <<ENV
export QTEST_AMQP_URL='amqp://guest:guest@127.0.0.1:5672/$vhost'
export QTEST_AMQP_VHOST='$vhost'
export QTEST_PG_URL='postgres://qop_test:qop_test@127.0.0.1:5432/$db'
export QTEST_PG_ADMIN_URL='postgres://qop_test:qop_test@127.0.0.1:5432/postgres'
ENV
  log "RabbitMQ vhost $vhost, PostgreSQL database $db"
}

down() {
  [ -d "$STATE" ] || return 0
  if [ -f "$STATE/run-id" ]; then
    local run; run=$(cat "$STATE/run-id")
    if rabbit_up; then rabbitmqctl -q delete_vhost "qop-test-$run" >/dev/null 2>&1 || true; fi
    if pg_up; then
      # Test databases made by the tests themselves carry the run id too.
      for d in $(as_postgres psql -qAt -c "SELECT datname FROM pg_database WHERE datname LIKE 'qop_test_${run}%'"); do
        as_postgres psql -q -c "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null || true
      done
    fi
    rm -f "$STATE/run-id"
  fi
  if [ -f "$STATE/rabbitmq.started-by-us" ]; then log "stopping RabbitMQ (we started it)"; rabbitmqctl -q stop >/dev/null 2>&1 || true; rm -f "$STATE/rabbitmq.started-by-us"; fi
  if [ -f "$STATE/postgres.started-by-us" ]; then log "stopping PostgreSQL (we started it)"; pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main stop || true; rm -f "$STATE/postgres.started-by-us"; fi
  rm -f "$STATE/services.env"
}

case "$cmd" in up) up ;; down) down ;; role) role ;; *) echo "usage: services.sh up|down|role STATE_DIR" >&2; exit 2 ;; esac
