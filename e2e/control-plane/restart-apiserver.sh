#!/usr/bin/env bash
# SIGKILL the kube-apiserver that cluster-up.sh started and start it again with the very
# same command line (read from /proc/<pid>/cmdline: same binary, ports, certificates and
# etcd), then wait for /readyz. etcd keeps running, so every object survives; only the
# API server's in-memory state (its watch cache) is lost, which is what the fault tests
# want: watches resuming from an older resourceVersion get 410 Gone.
#
#   e2e/control-plane/restart-apiserver.sh [SECONDS_DOWN]
#
# SECONDS_DOWN (default 0): how long the API server stays dead before it is started again.
# CLUSTER_READY_TIMEOUT (default 120): the /readyz deadline after the restart.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

down_for="${1:-0}"
[[ $down_for =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "SECONDS_DOWN must be a number, got '$down_for'"
ready_timeout="${CLUSTER_READY_TIMEOUT:-120}"
start_time=$SECONDS

# Hold cluster-up's lock while the API server is down: a cluster-up running meanwhile
# would otherwise see a dead server and wipe the cluster.
[[ -d $state_dir ]] || die "no cluster state in $state_dir: run 'make cluster-up' first"
exec 9>"$state_dir/lock"
flock -w 600 9 || die "timed out waiting for another cluster-up/cluster-down (lock $state_dir/lock)"

pidfile="$state_dir/kube-apiserver.pid"
pid_alive "$pidfile" || die "kube-apiserver is not running (no live pid in $pidfile): run 'make cluster-up'"
pid="$(<"$pidfile")"
argv=()
while IFS= read -r -d '' arg; do argv+=("$arg"); done <"/proc/$pid/cmdline"
((${#argv[@]} > 0)) && [[ ${argv[0]} == *kube-apiserver* ]] ||
  die "pid $pid in $pidfile is not kube-apiserver (command: ${argv[*]:-?})"
port="$(state_get KUBE_APISERVER_PORT)" || die "no KUBE_APISERVER_PORT in $state_dir/env"

log "killing kube-apiserver (pid $pid) with SIGKILL"
kill -KILL "$pid"
for ((i = 0; i < 100; i++)); do
  running "$pid" || break
  sleep 0.1
done
running "$pid" && die "kube-apiserver (pid $pid) survived SIGKILL"
sleep "$down_for"

log "starting kube-apiserver again on https://127.0.0.1:$port"
echo "---- restarted by restart-apiserver.sh at $(date -u +%FT%TZ) ----" >>"$state_dir/logs/kube-apiserver.log"
setsid "${argv[@]}" </dev/null >>"$state_dir/logs/kube-apiserver.log" 2>&1 9>&- &
echo $! >"$pidfile"

pki="$state_dir/pki"
wait_for kube-apiserver "$pidfile" "$state_dir/logs/kube-apiserver.log" "$ready_timeout" \
  curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
  "https://127.0.0.1:$port/readyz"
log "kube-apiserver restarted (pid $(<"$pidfile")) and ready in $((SECONDS - start_time))s"
