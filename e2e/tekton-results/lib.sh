# Shared by results-up.sh and results-down.sh. Source it; do not run it.
# shellcheck shell=bash

tr_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$tr_dir/../.." && pwd)"
cluster_dir="$repo_root/.cluster"
state_dir="$cluster_dir/results"
# shellcheck disable=SC2034 # used by the scripts that source this file
lock_file="$cluster_dir/results.lock"

log_prefix=tekton-results
# shellcheck source=../lib.sh
source "$tr_dir/../lib.sh"

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
  stop_pidfile "$state_dir/watcher.pid" tekton-results-watcher 15
  stop_pidfile "$state_dir/api.pid" tekton-results 15
  local pgdata
  pgdata="$(cat "$state_dir/pgdata.path" 2>/dev/null || true)"
  if [[ -n $pgdata && -s $pgdata/postmaster.pid ]]; then
    local bindir
    if bindir="$(find_pg_bindir)" && as_pg "$bindir/pg_ctl" -D "$pgdata" -m fast -w -t 30 stop >/dev/null 2>&1; then
      :
    else
      # pg_ctl unavailable or failed: signal the postmaster ourselves.
      head -n1 "$pgdata/postmaster.pid" >"$state_dir/postgres.pid" 2>/dev/null || true
      stop_pidfile "$state_dir/postgres.pid" postgres 15
    fi
  fi
  rm -f "$state_dir/postgres.pid"
  # A data directory outside the state dir (see results-up.sh) is ours to remove too.
  if [[ -n $pgdata && $pgdata != "$state_dir"/* && -f $(dirname "$pgdata")/.konflux-telemetry-results ]]; then
    rm -rf "$(dirname "$pgdata")"
  fi
}
