# Shared by cluster-up.sh and cluster-down.sh. Source it; do not run it.
# shellcheck shell=bash

cp_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$cp_dir/../.." && pwd)"
state_dir="$repo_root/.cluster"

die() { echo "cluster: error: $*" >&2; exit 1; }
log() { echo "cluster: $*" >&2; }

# pid_alive FILE: true if FILE holds the pid of a live process.
pid_alive() {
  local f="$1" pid
  [[ -s $f ]] || return 1
  pid="$(<"$f")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  running "$pid"
}

# running PID: the process exists and is not a zombie.
running() {
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0 # no procfs: trust kill -0
  stat="${stat##*) }"
  [[ ${stat%% *} != Z ]]
}

# stop_pidfile FILE NAME: TERM the process in FILE, KILL it after a deadline.
stop_pidfile() {
  local f="$1" name="$2" pid i
  [[ -s $f ]] || return 0
  pid="$(<"$f")"
  if ! [[ $pid =~ ^[0-9]+$ ]] || ! running "$pid"; then
    rm -f "$f"
    return 0
  fi
  # Only signal it if it is really ours: the binary we started.
  if [[ -r /proc/$pid/cmdline ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name"; then
    log "pid $pid in $f is not $name any more; leaving it alone"
    rm -f "$f"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do # 10 s
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    log "$name (pid $pid) did not stop after TERM; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      running "$pid" || break
      sleep 0.1
    done
  fi
  running "$pid" && die "could not stop $name (pid $pid)"
  rm -f "$f"
}

stop_all() {
  # The API server first, so it does not log a storm of etcd errors.
  stop_pidfile "$state_dir/kube-apiserver.pid" kube-apiserver
  stop_pidfile "$state_dir/etcd.pid" etcd
}

# Read a KEY=value line from .cluster/env (values are written unquoted).
state_get() {
  local key="$1"
  [[ -f $state_dir/env ]] || return 1
  sed -n "s/^export $key=//p" "$state_dir/env" | head -n1
}
