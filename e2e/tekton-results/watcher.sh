#!/usr/bin/env bash
# Run Tekton Results' own watcher (cmd/watcher, the version pinned in go.mod, built by
# build.sh) against the local control plane (.cluster/env) and the local Results API
# server (.cluster/results/env), so tests see records written the way production writes
# them.
#
#   watcher.sh start NAMESPACE   watch NAMESPACE only (its system namespace too); prints the pid
#   watcher.sh stop              stop it (SIGTERM, then SIGKILL)
#
# Log: .cluster/results/watcher.log. One watcher at a time per machine: knative's health
# probes listen on :8080, a port that cannot be configured.
#
# What it needs besides the flags: the TaskRun and CustomRun CRDs (it lists and watches
# them, and waits for their caches before it does anything), and in its system namespace
# the ConfigMaps config-observability and tekton-results-config-results-retention-policy
# (it refuses to start without them). The gRPC port is the REST port.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pidfile="$state_dir/watcher.pid"
logfile="$state_dir/watcher.log"
action="${1:-}"

if [[ $action == stop ]]; then
  stop_pidfile "$pidfile" tekton-results-watcher
  exit 0
fi
[[ $action == start && -n ${2:-} ]] || die "usage: $0 start NAMESPACE | stop"
namespace="$2"

[[ -f $cluster_dir/env && -x $cluster_dir/bin/kubectl ]] ||
  die "no local cluster: run e2e/control-plane/cluster-up.sh first"
[[ -f $state_dir/env ]] || die "Tekton Results is not up: run results-up.sh first"
pid_alive "$pidfile" && die "a watcher is already running (pid $(<"$pidfile")); stop it first"
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
  die "port 8080 is in use: the watcher's health probes need it"
fi

bin=""
while read -r name path; do
  [[ $name == watcher ]] && bin="$path"
done < <(bash "$tr_dir/build.sh" watcher)
[[ -x $bin ]] || die "build.sh did not produce the watcher"
mkdir -p "$state_dir/bin"
ln -sfn "$bin" "$state_dir/bin/tekton-results-watcher"

kubeconfig="$(sed -n 's/^export KUBECONFIG=//p' "$cluster_dir/env")"
kubectl=("$cluster_dir/bin/kubectl" --kubeconfig "$kubeconfig")
{
  "${kubectl[@]}" apply -f "$repo_root/e2e/crds/taskruns.tekton.dev.yaml"
  "${kubectl[@]}" apply -f "$repo_root/e2e/crds/customruns.tekton.dev.yaml"
  "${kubectl[@]}" wait --for=condition=Established --timeout=60s \
    crd/taskruns.tekton.dev crd/customruns.tekton.dev
  for cm in config-observability tekton-results-config-results-retention-policy; do
    "${kubectl[@]}" -n "$namespace" create configmap "$cm" --dry-run=client -o yaml |
      "${kubectl[@]}" apply -f -
  done
} >"$state_dir/watcher-setup.log" 2>&1 ||
  { cat "$state_dir/watcher-setup.log" >&2; die "preparing the cluster for the watcher failed"; }

addr="$(state_get TEKTON_RESULTS_API_ADDR)"
ca="$(state_get TEKTON_RESULTS_CA_FILE)"
profiling_port="$(for _ in {1..100}; do
  p=$((20000 + RANDOM % 40000))
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; break; }
done)"
[[ -n $profiling_port ]] || die "no free port for the watcher's profiling server"

# A clean environment: the CA through SSL_CERT_FILE (it reads /etc/tls/tls.crt or the
# system pool), the cluster through KUBECONFIG (its -kubeconfig flag is registered only
# after the first flag.Parse, so passing it fails).
env -i PATH=/usr/bin:/bin HOME="$state_dir" KUBECONFIG="$kubeconfig" \
  SYSTEM_NAMESPACE="$namespace" SSL_CERT_FILE="$ca" PROFILING_PORT="$profiling_port" \
  setsid "$state_dir/bin/tekton-results-watcher" \
  -api_addr "${addr#https://}" -auth_mode token -token not-checked-auth-is-disabled \
  -logs_api=false -disable-ha -namespace "$namespace" \
  </dev/null >"$logfile" 2>&1 8>&- &
echo $! >"$pidfile"

# Ready once its informers have synced: only then does it serve its probes.
deadline=$((SECONDS + ${WATCHER_READY_TIMEOUT:-60}))
until curl -fsS --max-time 2 http://127.0.0.1:8080/readiness >/dev/null 2>&1; do
  if ! pid_alive "$pidfile"; then
    tail -n 30 "$logfile" >&2
    die "the watcher exited during start-up (see $logfile)"
  fi
  if ((SECONDS > deadline)); then
    tail -n 30 "$logfile" >&2
    stop_pidfile "$pidfile" tekton-results-watcher
    die "the watcher is not ready after ${WATCHER_READY_TIMEOUT:-60}s (see $logfile)"
  fi
  sleep 0.2
done
log "watcher up (pid $(<"$pidfile")), namespace $namespace, Results ${addr#https://}"
cat "$pidfile"
