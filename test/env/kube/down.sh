#!/usr/bin/env bash
# Stops the control plane that test/env/kube/up.sh started in DIR and removes
# DIR. Only processes named by DIR's pid files, and whose command line shows
# they run for DIR, are signalled. A missing DIR is already down.
#
#   bash test/env/kube/down.sh DIR
set -euo pipefail

log() { printf 'kube/down: %s\n' "$*" >&2; }

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
[[ -d "$1" ]] || exit 0
dir="$(cd "$1" && pwd)"

if [[ ! -e "$dir/.quarantine-kube" ]]; then
  log "$dir was not made by up.sh; leaving it alone"
  exit 1
fi

# Prints the pid from the pid file if it is a live process running the named
# binary for this DIR; a recycled pid belongs to someone else.
our_pid() {
  local pidfile="$dir/$1.pid" pid cmd
  [[ -s "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  [[ "$cmd" == *"/$1 "* && "$cmd" == *"$dir/"* ]] || return 1
  printf '%s\n' "$pid"
}

# A killed process whose parent has not reaped it yet still answers kill -0;
# as a zombie it holds no ports or files, so it counts as stopped.
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z ]]
}

# up.sh detaches both processes, so init reaps them; give it a moment so that
# a process listing right after down.sh shows nothing of ours.
reaped() {
  for _ in $(seq 20); do
    [[ -e "/proc/$1" ]] || return 0
    sleep 0.1
  done
}

stop() {
  local name="$1" pid
  pid="$(our_pid "$name")" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do
    alive "$pid" || { reaped "$pid"; return 0; }
    sleep 0.1
  done
  log "$name ($pid) ignored SIGTERM for 15s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    alive "$pid" || { reaped "$pid"; return 0; }
    sleep 0.1
  done
  log "$name ($pid) is still running"
  return 1
}

# The apiserver goes first so that it does not spend its shutdown retrying a
# vanished etcd.
stop kube-apiserver
stop etcd
rm -rf "$dir"
