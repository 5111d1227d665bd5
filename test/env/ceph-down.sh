#!/usr/bin/env bash
# Stops the Ceph daemons that ceph-up.sh started in DIR and removes DIR.
# Only processes that are ceph daemons started with DIR/ceph.conf are signalled.
#
# Usage: ceph-down.sh DIR      (a missing DIR is not an error)
# Env:   KEEP_DIR=1  stop the daemons but keep DIR (its logs)
set -uo pipefail

DIR=${1:?usage: ceph-down.sh DIR}
MARKER=.qop-ceph
log() { echo "ceph-down: $*" >&2; }
T0=$(date +%s%N)

[ -d "$DIR" ] || { log "$DIR does not exist; nothing to do"; exit 0; }
DIR=$(cd "$DIR" && pwd)
if [ ! -e "$DIR/$MARKER" ]; then
  # ceph-up.sh may have died after mkdir and before writing its marker.
  if [ -z "$(ls -A "$DIR")" ]; then rmdir "$DIR" 2>/dev/null; log "removed empty $DIR"; exit 0; fi
  log "$DIR was not made by ceph-up.sh (no $MARKER); refusing to touch it"
  exit 1
fi
CONF=$DIR/ceph.conf

# ceph-up.sh calls us while it holds the lock itself.
if [ "${QOP_CEPH_LOCKED:-0}" != 1 ]; then
  exec 8<"$DIR"
  flock -w 180 8 || log "warning: $DIR is still locked by a ceph-up.sh run after 180 s; stopping anyway"
fi

ours() {
  local pid=$1 args
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  mapfile -d '' -t args <"/proc/$pid/cmdline" 2>/dev/null || return 1
  [ ${#args[@]} -gt 0 ] || return 1
  case "${args[0]##*/}" in ceph-mon | ceph-osd | ceph-mgr) ;; *) return 1 ;; esac
  local a; for a in "${args[@]}"; do [ "$a" = "$CONF" ] && return 0; done
  return 1
}

# A daemon killed before it wrote its pid file still names our conf on its
# command line, so /proc is searched too; the cmdline check keeps it to ours.
find_ours() {
  local kind=$1 f pid p
  {
    for f in "$DIR"/run/"$kind".*.pid; do
      [ -f "$f" ] || continue
      pid=$(cat "$f" 2>/dev/null)
      ours "$pid" && echo "$pid"
    done
    for p in /proc/[0-9]*; do
      pid=${p#/proc/}
      ours "$pid" && [ "$(kind_of "$pid")" = "$kind" ] && echo "$pid"
    done
  } | sort -u
}
kind_of() { local a; mapfile -d '' -t a <"/proc/$1/cmdline" 2>/dev/null; a=${a[0]##*/}; echo "${a#ceph-}"; }

stopped=()
# Signals a set of daemons and waits for them. An OSD told to stop asks the mon
# to mark it down and waits up to 5 s for the answer, so the mon goes last.
stop_all() {
  local pids=("$@") pid left
  [ ${#pids[@]} -gt 0 ] || return 0
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 1 150); do
    left=0; for pid in "${pids[@]}"; do ours "$pid" && left=1; done
    [ $left = 0 ] && break
    sleep 0.05
  done
  for pid in "${pids[@]}"; do
    ours "$pid" || continue
    log "pid $pid ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
  done
  for _ in $(seq 1 50); do
    left=0; for pid in "${pids[@]}"; do ours "$pid" && left=1; done
    [ $left = 0 ] && break
    sleep 0.1
  done
  stopped+=("${pids[@]}")
}
for kind in osd mgr mon; do
  mapfile -t pids < <(find_ours "$kind")
  stop_all "${pids[@]}"
done
for pid in "${stopped[@]}"; do
  if ours "$pid"; then log "ERROR: pid $pid of $DIR is still running"; exit 1; fi
done
# Their parent is PID 1; give it a moment to reap them so that `ps` right
# after us does not show them as <defunct>.
for _ in $(seq 1 40); do
  left=0; for pid in "${stopped[@]}"; do [ -e "/proc/$pid" ] && left=1; done
  [ $left = 0 ] && break
  sleep 0.05
done
log "stopped ${#stopped[@]} daemon(s) in $(( ($(date +%s%N) - T0) / 1000000 )) ms${stopped[*]:+: ${stopped[*]}}"

if [ "${KEEP_DIR:-0}" = 1 ]; then
  rm -f "$DIR/.ready"
else
  rm -rf -- "$DIR"
  log "removed $DIR"
fi
exit 0
