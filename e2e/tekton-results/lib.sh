# Shared by results-up.sh and results-down.sh. Source it; do not run it.
# shellcheck shell=bash

tr_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$tr_dir/../.." && pwd)"
cluster_dir="$repo_root/.cluster"
state_dir="$cluster_dir/results"
# shellcheck disable=SC2034 # used by the scripts that source this file
lock_file="$cluster_dir/results.lock"

die() { echo "tekton-results: error: $*" >&2; exit 1; }
log() { echo "tekton-results: $*" >&2; }

# pid_alive FILE: true if FILE holds the pid of a live process.
pid_alive() {
  local f="$1" pid
  [[ -s $f ]] || return 1
  pid="$(<"$f")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null
}

# stop_pidfile FILE NAME: TERM the process in FILE (if it is really NAME), KILL it
# after a deadline.
stop_pidfile() {
  local f="$1" name="$2" pid i
  [[ -s $f ]] || return 0
  pid="$(<"$f")"
  if ! [[ $pid =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$f"
    return 0
  fi
  if [[ -r /proc/$pid/cmdline ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name"; then
    log "pid $pid in $f is not $name any more; leaving it alone"
    rm -f "$f"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do # 15 s
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) did not stop after TERM; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  kill -0 "$pid" 2>/dev/null && die "could not stop $name (pid $pid)"
  rm -f "$f"
}

# The PostgreSQL server binaries: PG_BINDIR, else the newest /usr/lib/postgresql/*/bin
# (Debian layout), else whatever is on PATH.
find_pg_bindir() {
  if [[ -n ${PG_BINDIR:-} ]]; then
    [[ -x $PG_BINDIR/initdb && -x $PG_BINDIR/postgres ]] || die "PG_BINDIR=$PG_BINDIR has no initdb/postgres"
    echo "$PG_BINDIR"
    return
  fi
  # Highest major version when several are installed.
  local best
  best="$(for d in /usr/lib/postgresql/*/bin; do [[ -x $d/initdb && -x $d/postgres ]] && echo "$d"; done | sort -V | tail -n1)"
  if [[ -z $best ]] && command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
    best="$(dirname "$(command -v initdb)")"
  fi
  [[ -n $best ]] || return 1
  echo "$best"
}

# as_pg CMD...: run a PostgreSQL command as the database owner. PostgreSQL refuses to run
# as root, so as root it runs as the `postgres` system user; otherwise as ourselves.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    # setpriv execs (no extra parent process, unlike su/runuser); cwd / so that the
    # postgres user can always read it.
    (cd / && setpriv --reuid=postgres --regid=postgres --init-groups -- "$@")
  else
    "$@"
  fi
}

# Read a KEY=value line from .cluster/results/env.
state_get() {
  local key="$1"
  [[ -f $state_dir/env ]] || return 1
  sed -n "s/^export $key=//p" "$state_dir/env" | head -n1
}

# Processes of an earlier results-up of this checkout whose state directory was removed
# under them (e.g. by cluster-down/cluster-up, which clear .cluster/): found by their
# exact command line (this checkout's paths), stopped by pid. The API server first.
reap_orphans() {
  local pid argv0 cmd found=()
  for cmd in /proc/[0-9]*/cmdline; do
    pid="${cmd#/proc/}"
    pid="${pid%/cmdline}"
    argv0="$(tr '\0' '\n' 2>/dev/null <"$cmd" | head -n1)" || continue
    [[ $argv0 == "$state_dir/bin/tekton-results-api" ]] && found+=("$pid")
  done
  for pid in "${found[@]}"; do
    log "stopping an orphaned API server (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
  done
  found=()
  for cmd in /proc/[0-9]*/cmdline; do
    pid="${cmd#/proc/}"
    pid="${pid%/cmdline}"
    # The postmaster: `.../postgres -D <state>/pg ...`.
    if tr '\0' ' ' 2>/dev/null <"$cmd" | grep -qE "^/[^ ]*/postgres -D $state_dir/pg "; then
      found+=("$pid")
    fi
  done
  for pid in "${found[@]}"; do
    log "stopping an orphaned PostgreSQL (pid $pid)"
    kill -INT "$pid" 2>/dev/null || true # fast shutdown
  done
}

stop_all() {
  # A watcher left by a test (watcher.sh) goes first: it reports to the API server.
  stop_pidfile "$state_dir/watcher.pid" tekton-results-watcher
  stop_pidfile "$state_dir/api.pid" tekton-results
  local pgdata
  pgdata="$(cat "$state_dir/pgdata.path" 2>/dev/null || true)"
  if [[ -n $pgdata && -s $pgdata/postmaster.pid ]]; then
    local bindir
    if bindir="$(find_pg_bindir)" && as_pg "$bindir/pg_ctl" -D "$pgdata" -m fast -w -t 30 stop >/dev/null 2>&1; then
      :
    else
      # pg_ctl unavailable or failed: signal the postmaster ourselves.
      head -n1 "$pgdata/postmaster.pid" >"$state_dir/postgres.pid" 2>/dev/null || true
      stop_pidfile "$state_dir/postgres.pid" postgres
    fi
  fi
  rm -f "$state_dir/postgres.pid"
  # A data directory outside the state dir (see results-up.sh) is ours to remove too.
  if [[ -n $pgdata && $pgdata != "$state_dir"/* && -f $(dirname "$pgdata")/.konflux-telemetry-results ]]; then
    rm -rf "$(dirname "$pgdata")"
  fi
}
