#!/usr/bin/env bash
# Start a real Tekton Results API server for the integration tests: the API server
# built from source (build.sh, pinned in go.mod) against a throw-away local
# PostgreSQL, with RBAC auth disabled and TLS on (certificates generated here).
#
# State (PostgreSQL data, certificates, config, logs, pids) lives in
# .cluster/results/ at the repository root; `source .cluster/results/env` gives
#   TEKTON_RESULTS_API_ADDR   https://127.0.0.1:PORT  (REST/grpc-gateway and gRPC)
#   TEKTON_RESULTS_CA_FILE    the CA that signed the server certificate (PEM)
#
# The Kubernetes control plane is not needed: with AUTH_DISABLE=true the server
# never talks to Kubernetes.
#
# Idempotent: when the server is already up and healthy, it does nothing.
#
# Environment knobs (all optional):
#   RESULTS_API_PORT, RESULTS_PG_PORT, RESULTS_METRICS_PORT   fixed ports
#   RESULTS_READY_TIMEOUT   seconds to wait for the API server (default 120)
#   PG_BINDIR               directory with initdb/pg_ctl/postgres
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_time=$SECONDS
ready_timeout="${RESULTS_READY_TIMEOUT:-120}"

for tool in openssl curl flock; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found: run 'bash e2e/tekton-results/install-deps.sh'"
done
pg_bindir="$(find_pg_bindir)" ||
  die "PostgreSQL server not found (initdb, pg_ctl, postgres): run 'bash e2e/tekton-results/install-deps.sh' or set PG_BINDIR"
if [[ $(id -u) -eq 0 ]]; then
  id postgres >/dev/null 2>&1 ||
    die "running as root and there is no 'postgres' user to run PostgreSQL as: run 'bash e2e/tekton-results/install-deps.sh'"
  command -v setpriv >/dev/null 2>&1 || die "setpriv not found: apt-get install util-linux"
fi

mkdir -p "$cluster_dir"
# One results-up/results-down at a time (parallel test binaries, make, ...). The
# servers started below must not inherit this descriptor (they would hold the lock).
exec 8>"$lock_file"
flock -w 900 8 || die "timed out waiting for another results-up/results-down (lock $lock_file)"

ca="$state_dir/tls/ca.crt"
api_ready() {
  local addr
  addr="$(state_get TEKTON_RESULTS_API_ADDR)" || return 1
  [[ -n $addr ]] || return 1
  curl -fsS --max-time 5 --cacert "$ca" "$addr/healthz" >/dev/null 2>&1
}

# --- already running? -------------------------------------------------------
if [[ -f $state_dir/env ]] && pid_alive "$state_dir/api.pid" && pid_alive "$state_dir/postgres.pid"; then
  for ((i = 0; i < 10; i++)); do
    if api_ready; then
      log "already running: $(state_get TEKTON_RESULTS_API_ADDR) (pid $(<"$state_dir/api.pid"))"
      log "use it with: source .cluster/results/env"
      exit 0
    fi
    sleep 1
  done
  log "processes are alive but the API server does not answer; restarting from scratch"
fi
if [[ -d $state_dir ]]; then
  log "found stale state in $state_dir; cleaning up"
  stop_all
  rm -rf "$state_dir"
fi
reap_orphans
mkdir -p "$state_dir/logs" "$state_dir/tls" "$state_dir/api" "$state_dir/bin"

# --- binary -----------------------------------------------------------------
api_bin=""
while read -r name path; do
  [[ $name == api ]] && api_bin="$path"
done < <(bash "$tr_dir/build.sh" api)
[[ -x $api_bin ]] || die "build.sh did not produce the API server"
# Through a symlink whose name says what it is (results-down checks the command line).
ln -sfn "$api_bin" "$state_dir/bin/tekton-results-api"
version="$(awk '$1 == "github.com/tektoncd/results" {print $2}' "$tr_dir/go.mod")"

# --- ports ------------------------------------------------------------------
pg_port="" api_port="" metrics_port="" # set by pick_port
pick_port pg_port "${RESULTS_PG_PORT:-}"
pick_port api_port "${RESULTS_API_PORT:-}"
pick_port metrics_port "${RESULTS_METRICS_PORT:-}"

# --- PostgreSQL -------------------------------------------------------------
# The data directory must belong to the user PostgreSQL runs as. As root that is
# `postgres`, which must be able to reach it: when the checkout is not traversable by
# other users (e.g. under /root), the data goes to a private directory in /tmp instead.
pgdata="$state_dir/pg"
pglog="$state_dir/logs/postgres.log"
mkdir -p "$pgdata"
if [[ $(id -u) -eq 0 ]]; then
  chown postgres: "$pgdata"
  chmod 700 "$pgdata"
  if ! as_pg test -w "$pgdata"; then
    rm -rf "$pgdata"
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/konflux-telemetry-results.XXXXXX")"
    touch "$tmp/.konflux-telemetry-results"
    chmod 755 "$tmp"
    pgdata="$tmp/pg"
    mkdir -p "$pgdata"
    chown postgres: "$pgdata"
    chmod 700 "$pgdata"
    # The server log too: PostgreSQL opens it as the postgres user.
    pglog="$tmp/postgres.log"
    ln -sfn "$pglog" "$state_dir/logs/postgres.log"
    log "the postgres user cannot reach $state_dir; PostgreSQL data in $pgdata instead"
  fi
fi
echo "$pgdata" >"$state_dir/pgdata.path"
touch "$pglog"
if [[ $(id -u) -eq 0 ]]; then chown postgres: "$pglog"; fi

log "initialising PostgreSQL $("$pg_bindir/postgres" --version | awk '{print $3}') in $pgdata"
as_pg "$pg_bindir/initdb" -D "$pgdata" --auth=trust -U postgres -E UTF8 --locale=C --no-sync \
  >"$state_dir/logs/initdb.log" 2>&1 || {
  tail -n 20 "$state_dir/logs/initdb.log" >&2
  die "initdb failed (see $state_dir/logs/initdb.log)"
}
# Loopback TCP only, no Unix socket (its default directory may not exist or be
# writable), durability off: it is a test database.
log "starting PostgreSQL on 127.0.0.1:$pg_port"
as_pg "$pg_bindir/pg_ctl" -D "$pgdata" -l "$pglog" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null 2>&1 8>&- || {
  tail -n 20 "$pglog" >&2
  die "PostgreSQL did not start (see $pglog)"
}
head -n1 "$pgdata/postmaster.pid" >"$state_dir/postgres.pid"
db_name=tekton-results
psql_bin="$pg_bindir/psql"
[[ -x $psql_bin ]] || psql_bin="$(command -v psql)" || die "psql not found (postgresql-client)"
"$psql_bin" -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
  -c "CREATE DATABASE \"$db_name\"" >>"$state_dir/logs/initdb.log" 2>&1 ||
  die "could not create database $db_name (see $state_dir/logs/initdb.log)"

# --- certificates -----------------------------------------------------------
tls="$state_dir/tls"
new_ca "$tls" konflux-telemetry-results-test-ca \
  "IP:127.0.0.1, DNS:localhost, DNS:tekton-results-api-service.tekton-pipelines.svc.cluster.local"
issue_cert "$tls" tls "/CN=tekton-results-api" serving
chmod 600 "$tls"/*.key

# --- API server -------------------------------------------------------------
# The server reads its settings with viper from a file named `config` (env format) in
# /etc/tekton/results, config/base/env, config or the working directory, and lets
# environment variables override keys of that file. We run it in its own directory with
# the file there and a clean environment, so nothing from the caller's environment leaks in.
cat >"$state_dir/api/config" <<EOF
DB_USER=postgres
DB_PASSWORD=unused-trust-auth
DB_HOST=127.0.0.1
DB_PORT=$pg_port
DB_NAME=$db_name
DB_SSLMODE=disable
DB_SSLROOTCERT=
DB_ENABLE_AUTO_MIGRATION=true
DB_MAX_IDLE_CONNECTIONS=10
DB_MAX_OPEN_CONNECTIONS=10
GRPC_WORKER_POOL=2
K8S_QPS=5
K8S_BURST=10
PROFILING=false
PROFILING_PORT=6060
FEATURE_GATES=
SERVER_PORT=$api_port
PROMETHEUS_PORT=$metrics_port
PROMETHEUS_HISTOGRAM=false
TLS_PATH=$tls
TLS_MIN_VERSION=
TLS_CIPHER_SUITES=
TLS_CURVE_PREFERENCES=
AUTH_DISABLE=true
AUTH_IMPERSONATE=false
LOG_LEVEL=info
SQL_LOG_LEVEL=warn
LOGS_API=false
LOGS_TYPE=File
LOGS_BUFFER_SIZE=32768
LOGS_PATH=$state_dir/logs/results-logs
LOGS_TIMESTAMPS=false
CONVERTER_ENABLE=false
CONVERTER_DB_LIMIT=50
EOF
api_url="https://127.0.0.1:$api_port"
log "starting Tekton Results API server $version on $api_url"
(cd "$state_dir/api" && exec env -i PATH=/usr/bin:/bin HOME="$state_dir/api" \
  setsid "$state_dir/bin/tekton-results-api" \
  </dev/null >"$state_dir/logs/api.log" 2>&1 8>&-) &
echo $! >"$state_dir/api.pid"

rerun=results-up
wait_for "the API server" "$state_dir/api.pid" "$state_dir/logs/api.log" "$ready_timeout" \
  curl -fsS --max-time 2 --cacert "$ca" "$api_url/healthz"

cat >"$state_dir/env" <<EOF
# Written by e2e/tekton-results/results-up.sh; \`source\` it.
export TEKTON_RESULTS_API_ADDR=$api_url
export TEKTON_RESULTS_CA_FILE=$ca
export TEKTON_RESULTS_VERSION=$version
export TEKTON_RESULTS_PG_PORT=$pg_port
export TEKTON_RESULTS_METRICS_PORT=$metrics_port
EOF
log "ready in $((SECONDS - start_time))s: Tekton Results $version at $api_url (PostgreSQL on 127.0.0.1:$pg_port)"
log "use it with: source .cluster/results/env"
