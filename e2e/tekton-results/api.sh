#!/usr/bin/env bash
# Stop or start only the Tekton Results API server that results-up.sh set up, keeping
# PostgreSQL (and so every record), the certificates and the port: a client given the
# address before keeps reaching it once it is back. For the fault tests ("Results down
# during a sweep, then back").
#
#   e2e/tekton-results/api.sh stop    SIGKILL the API server (PostgreSQL keeps running)
#   e2e/tekton-results/api.sh start   start it again as results-up.sh did, wait for /healthz
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

action="${1:-}"
[[ $action == stop || $action == start ]] || die "usage: $0 stop|start"
[[ -f $state_dir/env && -f $state_dir/api/config ]] || die "Tekton Results is not set up: run results-up.sh first"
exec 8>"$lock_file"
flock -w 900 8 || die "timed out waiting for another results-up/results-down (lock $lock_file)"

pidfile="$state_dir/api.pid"
if [[ $action == stop ]]; then
  if pid_alive "$pidfile"; then
    pid="$(<"$pidfile")"
    # The pid results-up.sh recorded is the subshell that exec'd env, which exec'd
    # setsid, which exec'd the server: the same process, if it is still ours.
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q tekton-results-api ||
      die "pid $pid in $pidfile is not the Tekton Results API server"
    kill -KILL "$pid"
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    log "API server (pid $pid) killed; PostgreSQL keeps running"
  else
    log "API server not running"
  fi
  rm -f "$pidfile"
  exit 0
fi

pid_alive "$state_dir/postgres.pid" || die "PostgreSQL is not running: run results-down.sh and results-up.sh"
addr="$(state_get TEKTON_RESULTS_API_ADDR)"
ca="$(state_get TEKTON_RESULTS_CA_FILE)"
if ! pid_alive "$pidfile"; then
  echo "---- restarted by api.sh at $(date -u +%FT%TZ) ----" >>"$state_dir/logs/api.log"
  (cd "$state_dir/api" && exec env -i PATH=/usr/bin:/bin HOME="$state_dir/api" \
    setsid "$state_dir/bin/tekton-results-api" \
    </dev/null >>"$state_dir/logs/api.log" 2>&1 8>&-) &
  echo $! >"$pidfile"
fi
wait_for "the API server" "$pidfile" "$state_dir/logs/api.log" "${RESULTS_READY_TIMEOUT:-120}" \
  curl -fsS --max-time 2 --cacert "$ca" "$addr/healthz"
log "API server up again at $addr (pid $(<"$pidfile"))"
