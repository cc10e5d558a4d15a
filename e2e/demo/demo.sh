#!/usr/bin/env bash
# make demo: the daemon on local defaults. Starts the local API server (if not running),
# the Segment-compatible sink and the daemon with a 1 s flush, then plays a small Konflux
# (tenants, components, PipelineRuns started and completed) and prints each event as it
# reaches the sink. Ctrl-C stops everything it started.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
say() { printf '\033[1mdemo:\033[0m %s\n' "$*" >&2; }

started_cluster=0
pids=()
run_id=$(date +%H%M%S)
cleanup() {
  trap - INT TERM EXIT
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # and whatever else this script started (the tail | formatter pipeline)
  pkill -TERM -P $$ 2>/dev/null || true
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # The API server stays if it was running before (its objects too: make cluster-down
  # removes them); if the demo started it, it goes.
  if [[ $started_cluster == 1 ]]; then bash e2e/control-plane/cluster-down.sh >/dev/null 2>&1 || true; fi
  say "stopped; nothing left running"
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

if [[ ! -s .cluster/kubeconfig ]]; then started_cluster=1; fi
say "starting the local API server (the first run builds it from source: several minutes)"
bash e2e/control-plane/cluster-up.sh
# shellcheck disable=SC1091
source .cluster/env
say "building konflux-telemetry"
cargo build --release 2>&1 | grep -vE '^\s+(Compiling|Downloaded|Downloading)' >&2 || true
bin="$root/target/release/konflux-telemetry"
[[ -x $bin && -x $bin-sink ]] || { echo "demo: build failed" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir="$root/.cluster/demo"; rm -rf "$dir"; mkdir -p "$dir"
sink_port=$(free_port); http_port=$(free_port)
"$bin-sink" --listen "127.0.0.1:$sink_port" --write-key demo-key --out "$dir/sink.ndjson" >"$dir/sink.log" 2>&1 &
pids+=($!)
kubectl create namespace segment-bridge --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# The demo's settings: a Usage Summary every 30 s (a day by default), so one shows.
kubectl -n segment-bridge create configmap konflux-telemetry-demo --from-literal=summaryInterval=30s \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# The local API server is vanilla Kubernetes, where telemetry is off unless opted in.
"$bin" run --kubeconfig "$KUBECONFIG" --segment-api-url "http://127.0.0.1:$sink_port/v1" \
  --segment-write-key demo-key --cluster-id demo-cluster --flush-interval 1s \
  --telemetry-enabled true --config-map segment-bridge/konflux-telemetry-demo \
  --state-config-map "" --listen "127.0.0.1:$http_port" >"$dir/daemon.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null || { echo "demo: the daemon did not get ready; see $dir/daemon.log" >&2; exit 1; }
say "daemon ready.  preview: http://127.0.0.1:$http_port/preview   metrics: http://127.0.0.1:$http_port/metrics"
say "logs: $dir/daemon.log   events at the sink: $dir/sink.ndjson"

# Print every event reaching the sink, one readable line each.
touch "$dir/sink.ndjson"
tail -n +1 -F "$dir/sink.ndjson" 2>/dev/null | python3 -u -c '
import json, sys
for line in sys.stdin:
    try: e = json.loads(line)
    except ValueError: continue
    p = e.get("properties", {})
    keys = ("namespaceHash","componentHash","pipelineType","taskCount","status","durationSeconds",
            "fromVersion","toVersion","tenantNamespaces","activeTenantNamespaces","componentsCreated","pipelineRuns")
    extra = " ".join(f"{k}={json.dumps(p[k], separators=(chr(44), chr(58)))}" for k in keys if k in p)
    ts, name = e.get("timestamp", ""), e.get("event", "")
    print(f"  -> {ts:<22} {name:<30} {extra}", flush=True)
' &
pids+=($!)

now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
play() {
  local t=$1
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: demo-tenant-$t-$run_id
  labels: {konflux-ci.dev/type: tenant}
---
apiVersion: appstudio.redhat.com/v1alpha1
kind: Component
metadata: {name: web, namespace: demo-tenant-$t-$run_id}
spec: {application: shop}
YAML
  for r in 1 2; do
    kubectl apply -f - >/dev/null <<YAML
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: web-on-push-$r
  namespace: demo-tenant-$t-$run_id
  labels: {tekton.dev/pipeline: docker-build, pipelines.appstudio.openshift.io/type: build}
spec: {pipelineRef: {name: docker-build}}
YAML
    local start; start=$(now)
    kubectl -n "demo-tenant-$t-$run_id" patch pipelinerun "web-on-push-$r" --subresource=status --type=merge \
      -p "{\"status\":{\"startTime\":\"$start\",\"childReferences\":[{\"name\":\"clone\"}]}}" >/dev/null
    sleep 2
    local reason=Succeeded; [[ $r == 2 ]] && reason=Failed
    kubectl -n "demo-tenant-$t-$run_id" patch pipelinerun "web-on-push-$r" --subresource=status --type=merge \
      -p "{\"status\":{\"startTime\":\"$start\",\"completionTime\":\"$(now)\",\"childReferences\":[{\"name\":\"clone\"},{\"name\":\"build\"},{\"name\":\"push\"}],\"conditions\":[{\"type\":\"Succeeded\",\"status\":\"True\",\"reason\":\"$reason\"}]}}" >/dev/null
  done
}
say "playing a small Konflux: 2 tenants, a component each, 2 PipelineRuns each"
for t in 1 2; do play "$t"; done
sleep 3
say "done playing; the daemon keeps running (heartbeat hourly, a Usage Summary every 30 s). Ctrl-C to stop."
if [[ ${DEMO_EXIT:-0} == 1 ]]; then exit 0; fi
wait "${pids[0]}"
