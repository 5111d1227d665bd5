# shellcheck shell=bash
# Sourced by test/env/kube/{up,down}.sh and test/env/node/{up,down}.sh: the
# daemons they run live in a state directory DIR, each with its pid in
# DIR/NAME.pid and its output in DIR/NAME.log. The caller defines log().

# proc_pid DIR NAME: prints the pid from DIR/NAME.pid if it is a live process
# running the binary NAME for DIR; a recycled pid belongs to someone else.
proc_pid() {
  local dir="$1" name="$2" pid cmd
  [[ -s "$dir/$name.pid" ]] || return 1
  pid="$(<"$dir/$name.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  [[ "$cmd" == *"/$name "* && "$cmd" == *"$dir/"* ]] || return 1
  printf '%s\n' "$pid"
}

# proc_ours DIR NAME: true when DIR/NAME.pid names our running NAME.
proc_ours() { proc_pid "$@" >/dev/null; }

# proc_alive PID: a killed process whose parent has not reaped it yet still
# answers kill -0; as a zombie it holds no ports or files, so it counts as
# stopped.
proc_alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z ]]
}

# proc_start DIR NAME EXE [ARG...]: starts EXE in its own session, so that it
# outlives the script and the shell or test runner that called it, with its
# output in DIR/NAME.log, and returns once its pid is in DIR/NAME.pid.
proc_start() {
  local dir="$1" name="$2" exe="$3"
  shift 3
  rm -f "$dir/$name.pid"
  # shellcheck disable=SC2016 # $$, $0 and $@ are the inner shell's
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/$name.pid" "$exe" "$@" \
    >"$dir/$name.log" 2>&1 </dev/null &
  for _ in $(seq 50); do [[ -s "$dir/$name.pid" ]] && break; sleep 0.1; done
  [[ -s "$dir/$name.pid" ]] || { log "$name did not start"; return 1; }
}

# proc_stop NAME PID: SIGTERM, then SIGKILL after 15s; returns once PID has
# exited, or 1 if it outlives SIGKILL by 5s.
proc_stop() {
  local name="$1" pid="$2"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do
    proc_alive "$pid" || break
    sleep 0.1
  done
  if proc_alive "$pid"; then
    log "$name ($pid) ignored SIGTERM for 15s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do proc_alive "$pid" || break; sleep 0.1; done
  fi
  if proc_alive "$pid"; then
    log "$name ($pid) is still running"
    return 1
  fi
  # proc_start detaches the process, so init reaps it; give it a moment so
  # that a process listing right after a stop shows nothing of ours.
  for _ in $(seq 20); do [[ -e "/proc/$pid" ]] || break; sleep 0.1; done
}

# proc_stop_ours DIR NAME: stops NAME if DIR/NAME.pid names our running NAME.
proc_stop_ours() {
  local pid
  pid="$(proc_pid "$1" "$2")" || return 0
  proc_stop "$2" "$pid"
}

# proc_free_port: a loopback TCP port that nothing uses now. The kernel has no
# "reserve a port for later" call, so it is picked below the ephemeral range
# that outgoing connections draw from; a start that still loses a race is for
# the caller to retry with another port.
proc_free_port() {
  local port used
  used="$(ss -Htan 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')"
  while :; do
    port=$((20000 + RANDOM % 12000))
    grep -qx "$port" <<<"$used" || { printf '%s\n' "$port"; return; }
  done
}
