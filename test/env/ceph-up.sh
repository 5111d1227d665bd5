#!/usr/bin/env bash
# Boots a throwaway single-node Ceph cluster (1 mon + 1 memstore OSD, no mgr)
# in DIR, bound to 127.0.0.1, for the integration tests. Prints DIR on stdout;
# progress goes to stderr. Afterwards: `source DIR/env`.
#
# Usage: ceph-up.sh DIR
#   DIR holding a running cluster made by this script: prints DIR, exits 0.
#   DIR holding a dead or half-made one: cleans it and boots a new one.
#   DIR that is not empty and not ours: refused.
# Env: QTEST_CEPH_OSD_MB  memstore capacity in MiB (default 4096; RAM only
#                         holds what is written)
set -euo pipefail

DIR=${1:?usage: ceph-up.sh DIR}
OSD_MB=${QTEST_CEPH_OSD_MB:-4096}
CLOUD_POOLS="vms images volumes"
QUARANTINE_POOL=quarantine
CLOUD_ID=nova
OPERATOR_ID=quarantine-operator
# The operator as a cloud that only ever captures by snapshot (softDelete, onDelete) should
# configure it: the least-privilege caps of docs/cloud-operators.md, proven by test/integration/ceph-caps.test.ts.
SNAPSHOT_OPERATOR_ID=quarantine-snapshot
MARKER=.qop-ceph
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

T0=$(date +%s%N)
log() { printf 'ceph-up [%5d ms] %s\n' $(( ($(date +%s%N) - T0) / 1000000 )) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (the daemons and the package install need it)"

# --- packages --------------------------------------------------------------------
need_bins=(ceph-mon ceph-osd ceph-authtool monmaptool ceph rbd)
missing_bins() { local b out=""; for b in "${need_bins[@]}"; do command -v "$b" >/dev/null || out+="${out:+ }$b"; done; echo "$out"; }
if [ -n "$(missing_bins)" ]; then
  log "ceph binaries missing ($(missing_bins)); installing ceph-mon ceph-osd ceph-common with apt-get"
  command -v apt-get >/dev/null || die "apt-get not found: install ceph-mon, ceph-osd and ceph-common (Ceph >= 16) yourself"
  export DEBIAN_FRONTEND=noninteractive
  # Package scripts must not start daemons of their own: there is no init system
  # in CI containers, and a stray system mon would hold ports and /var/lib/ceph.
  policy_made=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_made=1
  fi
  ok=1
  apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || ok=0
  if [ $ok = 1 ]; then
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends ceph-mon ceph-osd ceph-common >&2 || ok=0
  fi
  [ $policy_made = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $ok = 1 ] || die "apt-get could not install ceph-mon ceph-osd ceph-common (see the apt output above); install them and rerun"
  [ -z "$(missing_bins)" ] || die "still missing after install: $(missing_bins)"
  log "ceph packages installed: $(ceph --version 2>/dev/null)"
fi
for b in flock timeout; do command -v "$b" >/dev/null || die "missing $b (util-linux/coreutils)"; done

# --- the directory -----------------------------------------------------------------
DIR=$(realpath -m -- "$DIR")
# Unix socket paths are limited to 107 bytes; keep "$DIR/run/osd.0.asok" well under.
[ ${#DIR} -le 80 ] || die "DIR path is ${#DIR} chars; unix sockets need a short one (<= 80), e.g. /tmp/qop-ceph-XXXX"
mkdir -p "$DIR"
CONF=$DIR/ceph.conf

# One up/down at a time per DIR. The lock is on the directory itself, so it
# leaves no file behind; daemons are started with this fd closed.
exec 8<"$DIR"
flock -w 180 8 || die "another ceph-up/ceph-down holds $DIR"

# A pid is ours only if it is a ceph daemon started with this DIR's ceph.conf.
ours() {
  local pid=$1 args
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  mapfile -d '' -t args <"/proc/$pid/cmdline" 2>/dev/null || return 1
  [ ${#args[@]} -gt 0 ] || return 1
  case "${args[0]##*/}" in ceph-mon | ceph-osd | ceph-mgr) ;; *) return 1 ;; esac
  local a; for a in "${args[@]}"; do [ "$a" = "$CONF" ] && return 0; done
  return 1
}
daemon_alive() { local f=$DIR/run/$1.pid; [ -f "$f" ] && ours "$(cat "$f")"; }

if [ -e "$DIR/$MARKER" ]; then
  if [ -e "$DIR/.ready" ] && daemon_alive mon.a && daemon_alive osd.0 &&
    timeout 15 ceph --conf "$CONF" --connect-timeout 10 health >/dev/null 2>&1; then
    log "$DIR already holds a running cluster; reusing it"
    echo "$DIR"
    exit 0
  fi
  log "$DIR holds a dead or unfinished cluster; stopping what is left and re-creating it"
  # Still holding the lock, so tell ceph-down not to wait for it.
  QOP_CEPH_LOCKED=1 KEEP_DIR=1 bash "$HERE/ceph-down.sh" "$DIR"
  find "$DIR" -mindepth 1 -delete
elif [ -n "$(ls -A "$DIR")" ]; then
  die "$DIR is not empty and was not made by ceph-up.sh; refusing to touch it"
fi

touch "$DIR/$MARKER"
# From here on a failure stops whatever was started; DIR stays for its logs and
# the next run cleans it.
jobs_pids=()
# Background steps run their commands under `timeout`, which makes its own
# process group, so they are stopped by walking the process tree.
kill_tree() {
  local pid=$1 child
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do kill_tree "$child"; done
  kill -TERM "$pid" 2>/dev/null || true
}
on_exit() {
  local rc=$1 pid
  [ "$rc" -ne 0 ] || return 0
  log "failed (rc=$rc); stopping what was started, logs in $DIR/log"
  for pid in "${jobs_pids[@]}"; do kill_tree "$pid"; done
  QOP_CEPH_LOCKED=1 KEEP_DIR=1 bash "$HERE/ceph-down.sh" "$DIR" || true
}
trap 'on_exit $?' EXIT
# A caller giving up on us (Ctrl-C, a test runner's timeout) gets the same cleanup.
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$DIR"/{run,log,mon/a,osd/0}

# --- port --------------------------------------------------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# "pick a port .. mon bound to it" must not interleave with another run.
exec 9>"${TMPDIR:-/tmp}/.qop-ceph-port.lock"
flock -w 180 9 || die "could not take the port lock"
PORT=13500
while ! port_free "$PORT" || ! port_free $((PORT + 1)); do
  PORT=$((PORT + 2))
  [ "$PORT" -lt 13700 ] || die "no free mon port pair in 13500-13699"
done
MON_ADDRS="[v2:127.0.0.1:$PORT,v1:127.0.0.1:$((PORT + 1))]"
FSID=$(cat /proc/sys/kernel/random/uuid)

cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon_host = $MON_ADDRS
public_addr = 127.0.0.1
# without cluster_addr the OSD binds its cluster and heartbeat ports on 0.0.0.0
cluster_addr = 127.0.0.1
public_network = 127.0.0.0/8
cluster_network = 127.0.0.0/8
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
run_dir = $DIR/run
pid_file = $DIR/run/\$name.pid
crash_dir = $DIR/crash
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_delete = true
# a nearly full CI disk must not turn health to MON_DISK_LOW
mon_data_avail_warn = 1
mon_data_avail_crit = 0

[client]
keyring = $DIR/ceph.\$name.keyring

[mon]
mon_data = $DIR/mon/\$id
admin_socket = $DIR/run/\$name.asok
log_file = $DIR/log/\$name.log
mon_cluster_log_file = $DIR/log/cluster.log
mon_initial_members = a
# no mgr here: without this, health turns MGR_DOWN once the mon is 120 s old
mon_mgr_mkfs_grace = 315360000
# test-only: each snapshot/pool change would otherwise wait up to 1 s for paxos
paxos_propose_interval = 0.01
paxos_min_wait = 0.001

[osd]
osd_data = $DIR/osd/\$id
admin_socket = $DIR/run/\$name.asok
keyring = $DIR/osd/\$id/keyring
log_file = $DIR/log/\$name.log
osd_objectstore = memstore
memstore_device_bytes = $((OSD_MB * 1024 * 1024))
EOF

log "dir=$DIR fsid=$FSID mon=$MON_ADDRS"
C=(--conf "$CONF")
ceph_t() { timeout 30 ceph "${C[@]}" --connect-timeout 10 "$@"; }
# Daemons detach from our stdio (a caller reading stdout through a pipe would
# otherwise wait for them) and must not inherit the lock fds.
start_daemon() {
  "$@" </dev/null >>"$DIR/log/daemon-start.out" 2>&1 8<&- 9>&- ||
    { cat "$DIR/log/daemon-start.out" >&2; die "failed to start: $*"; }
}

# --- keys and mon -------------------------------------------------------------------
# The mon keyring must live outside the mon data dir: mkfs wants that dir empty.
ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$DIR/ceph.client.admin.keyring" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/ceph.client.admin.keyring" >/dev/null
monmaptool --create --fsid "$FSID" --addv a "$MON_ADDRS" "$DIR/monmap" >/dev/null
ceph-mon "${C[@]}" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring" \
  >"$DIR/log/mon-mkfs.log" 2>&1 || { cat "$DIR/log/mon-mkfs.log" >&2; die "mon mkfs failed"; }
start_daemon ceph-mon "${C[@]}" -i a
for i in $(seq 1 100); do
  ceph_t mon stat >/dev/null 2>&1 && break
  [ "$i" -lt 100 ] || die "mon did not answer within 20 s (see $DIR/log/mon.a.log)"
  sleep 0.2
done
flock -u 9
exec 9>&-
log "mon answers on port $PORT"

# --- osd ----------------------------------------------------------------------------
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
osd_id=$(ceph_t osd new "$OSD_UUID")
[ "$osd_id" = 0 ] || die "expected osd id 0, got '$osd_id'"
# mkfs cannot fetch the mon config without a key, so the key comes first.
ceph_t auth get-or-create osd.0 mon 'allow profile osd' osd 'allow *' mgr 'allow profile osd' \
  -o "$DIR/osd/0/keyring" >/dev/null
ceph-osd "${C[@]}" -i 0 --mkfs --osd-uuid "$OSD_UUID" >"$DIR/log/osd-mkfs.log" 2>&1 ||
  { cat "$DIR/log/osd-mkfs.log" >&2; die "osd mkfs failed"; }
start_daemon ceph-osd "${C[@]}" -i 0
for i in $(seq 1 150); do
  ceph_t osd stat -f json 2>/dev/null | grep -q '"num_up_osds":1' && break
  [ "$i" -lt 150 ] || die "osd did not come up within 30 s (see $DIR/log/osd.0.log)"
  sleep 0.2
done
log "osd up"

# --- pools and users ------------------------------------------------------------------
# Each ceph/rbd call is mostly process start-up and auth, so independent ones run side by side.
jobs_what=()
# stdout of the jobs goes to stderr (our stdout carries only DIR); they must not
# hold the locks should they outlive us.
bg() { local what=$1; shift; "$@" >&2 8<&- 9>&- & jobs_pids+=($!); jobs_what+=("$what"); }
wait_all() {
  local i rc=0
  for i in "${!jobs_pids[@]}"; do
    wait "${jobs_pids[$i]}" || { log "failed: ${jobs_what[$i]}"; rc=1; }
  done
  jobs_pids=(); jobs_what=()
  [ $rc = 0 ] || die "boot step failed (see above)"
}
make_pool() {
  ceph_t osd pool create "$1" 8 8 replicated >/dev/null 2>&1 && timeout 120 rbd "${C[@]}" pool init "$1"
}
caps_for() { local out="" p; for p in "$@"; do out+="${out:+, }profile rbd pool=$p"; done; echo "$out"; }
# shellcheck disable=SC2086
cloud_caps=$(caps_for $CLOUD_POOLS)
# shellcheck disable=SC2086
operator_caps=$(caps_for $CLOUD_POOLS $QUARANTINE_POOL)
# Read everything, write only image headers and object maps (snapshots, clone links) in the pools it
# captures from; read-only on the Glance pool (parents, read when flattening); rbd on the quarantine pool.
snapshot_caps() { local out="" p; for p in "$@"; do out+="${out:+, }allow r class-read pool=$p, allow rwx pool=$p object_prefix rbd_header., allow rwx pool=$p object_prefix rbd_object_map."; done; echo "$out"; }
snapshot_operator_caps="$(snapshot_caps vms volumes), profile rbd-read-only pool=images, profile rbd pool=$QUARANTINE_POOL"

# v2 clones: needed for clones across pools/namespaces and for removing a
# parent snapshot that still has clones.
bg "require-min-compat-client mimic" ceph_t osd set-require-min-compat-client mimic
for p in $CLOUD_POOLS $QUARANTINE_POOL; do bg "pool $p" make_pool "$p"; done
bg "client.$CLOUD_ID" ceph_t auth get-or-create "client.$CLOUD_ID" mon 'profile rbd' osd "$cloud_caps" \
  mgr "$cloud_caps" -o "$DIR/ceph.client.$CLOUD_ID.keyring"
bg "client.$OPERATOR_ID" ceph_t auth get-or-create "client.$OPERATOR_ID" mon 'profile rbd' osd "$operator_caps" \
  mgr "$operator_caps" -o "$DIR/ceph.client.$OPERATOR_ID.keyring"
bg "client.$SNAPSHOT_OPERATOR_ID" ceph_t auth get-or-create "client.$SNAPSHOT_OPERATOR_ID" mon 'profile rbd' osd "$snapshot_operator_caps" \
  mgr "profile rbd pool=$QUARANTINE_POOL" -o "$DIR/ceph.client.$SNAPSHOT_OPERATOR_ID.keyring"
wait_all
log "pools ready: $CLOUD_POOLS $QUARANTINE_POOL"
log "users: client.$CLOUD_ID ($cloud_caps), client.$OPERATOR_ID ($operator_caps)"

# --- health ---------------------------------------------------------------------------
health=""
for i in $(seq 1 150); do
  health=$(ceph_t health 2>/dev/null || true)
  case "$health" in HEALTH_OK*) break ;; esac
  if [ "$i" -ge 150 ]; then ceph_t health detail >&2 || true; die "health not OK after 30 s: $health"; fi
  sleep 0.2
done

cat >"$DIR/env" <<EOF
export CEPH_CONF='$CONF'
export QTEST_CEPH_DIR='$DIR'
export QTEST_CEPH_CONF='$CONF'
export QTEST_CEPH_CLOUD_ID='$CLOUD_ID'
export QTEST_CEPH_OPERATOR_ID='$OPERATOR_ID'
export QTEST_CEPH_SNAPSHOT_OPERATOR_ID='$SNAPSHOT_OPERATOR_ID'
export QTEST_CEPH_POOLS='$CLOUD_POOLS'
export QTEST_CEPH_QUARANTINE_POOL='$QUARANTINE_POOL'
export QTEST_CEPH_MON_PORT='$PORT'
EOF
touch "$DIR/.ready"
log "ready ($health): source $DIR/env"
echo "$DIR"
