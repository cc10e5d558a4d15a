#!/usr/bin/env bash
# The kind e2e suite (run by kind-e2e.sh, on a cluster where deploy/overlays/kind and the
# sink are installed): each check is a function; the run ends with one line
#   kind-e2e: N passed, M failed
# Events are read from the in-cluster sink's output (its Pod's log: one JSON line per
# accepted event). Nothing waits a fixed time: every wait polls for a condition, and
# "nothing was sent twice" is checked after a marker event sent after the thing under test.
#
# Needs KUBECONFIG, kubectl, jq, and from kind-e2e.sh: E2E_WORK (a scratch folder),
# E2E_DEPLOY (the overlay as applied), KIND_CLUSTER.
set -euo pipefail

ns=segment-bridge
cluster_id=kind-e2e # CLUSTER_ID in deploy/overlays/kind/deployment-patch.yaml
work="${E2E_WORK:?}"
deploy="${E2E_DEPLOY:?}"
run_id="$(date +%s)"

# --- helpers ---------------------------------------------------------------------------
note() { echo "  $*" >&2; }
fail() { echo "  FAILED: $*" >&2; return 1; }

# h STRING: the project's hash (first 12 hex characters of SHA-256).
h() { printf '%s' "$1" | sha256sum | cut -c1-12; }

# poll SECONDS WHAT CMD...: run CMD until it succeeds, or fail after SECONDS.
poll() {
  local seconds="$1" what="$2" deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    # `return`, not only `fail`: errexit does not hold in a command substitution
    # (`event="$(wait_event ...)"`), where a failed `fail` alone polled forever.
    if ((SECONDS >= deadline)); then
      fail "timed out after ${seconds}s waiting for $what"
      return 1
    fi
    sleep 1
  done
}

# Every event the sink accepted so far, one JSON object a line.
sink_events() {
  kubectl -n "$ns" logs deploy/segment-sink --tail=-1 2>/dev/null | grep '^{' | jq -c 'select(.messageId?)' 2>/dev/null
}
# count ID: how often the sink accepted messageId ID.
count() { sink_events | jq -r .messageId | grep -cxF "$1" || true; }
has_event() { (($(count "$1") > 0)); }
# wait_event ID: wait until the sink has ID, print that event.
wait_event() {
  poll "${2:-90}" "event $1 at the sink" has_event "$1" || return 1
  sink_events | jq -c --arg id "$1" 'select(.messageId == $id)' | head -n 1
}
# no_duplicates: every messageId the sink accepted, accepted once.
no_duplicates() {
  local dups
  dups="$(sink_events | jq -r .messageId | sort | uniq -d)"
  [[ -z $dups ]] || fail "sent more than once: $(echo "$dups" | tr '\n' ' ')"
}

# The daemon's Pod that is not terminating.
daemon_pod() {
  kubectl -n "$ns" get pods -l app.kubernetes.io/name=konflux-telemetry -o json \
    | jq -r '[.items[] | select(.metadata.deletionTimestamp == null) | .metadata.name][0] // empty'
}
# metric NAME: the value of an unlabelled metric of the daemon, through the API server's proxy.
metric() {
  kubectl get --raw "/api/v1/namespaces/$ns/pods/$(daemon_pod):8080/proxy/metrics" \
    | awk -v n="$1" '$1 == n {print $2}'
}
buffered_at_least() { local v; v="$(metric konflux_telemetry_events_buffered)"; [[ -n $v ]] && (($(printf '%.0f' "$v") >= $1)); }
daemon_logs_have() { kubectl -n "$ns" logs "$(daemon_pod)" 2>/dev/null | grep -qF -- "$1"; }
wait_daemon_ready() {
  kubectl -n "$ns" rollout status deploy/konflux-telemetry --timeout=120s >/dev/null
  poll 60 "a ready daemon Pod" bash -c "[[ -n \"\$(kubectl -n $ns get pods -l app.kubernetes.io/name=konflux-telemetry -o jsonpath='{.items[?(@.status.containerStatuses[0].ready==true)].metadata.name}')\" ]]"
}
# set_flush INTERVAL: change flushInterval in the settings ConfigMap and wait until the
# running daemon says it applied it.
set_flush() {
  local seconds="$2"
  kubectl -n "$ns" patch configmap konflux-telemetry --type=merge -p "{\"data\":{\"flushInterval\":\"$1\"}}" >/dev/null
  poll 60 "the daemon to apply flushInterval=$1" daemon_logs_have "flushInterval=${seconds}s"
}
uid_of() { kubectl get "$@" -o jsonpath='{.metadata.uid}'; }

# A tenant namespace; prints its uid.
tenant() {
  kubectl create namespace "$1" >/dev/null
  kubectl label namespace "$1" konflux-ci.dev/type=tenant >/dev/null
  uid_of namespace "$1"
}
component_yaml() {
  cat <<YAML
apiVersion: appstudio.redhat.com/v1alpha1
kind: Component
metadata:
  name: $1
  namespace: $2
spec:
  application: app-$run_id
  componentName: $1
YAML
}

# --- the checks ------------------------------------------------------------------------

pod_ready_confined() {
  local pod node pid uid
  wait_daemon_ready
  pod="$(daemon_pod)"
  [[ $(kubectl -n "$ns" get pod "$pod" -o jsonpath='{.spec.serviceAccountName}') == konflux-telemetry ]] \
    || fail "the Pod does not run as ServiceAccount konflux-telemetry"
  [[ $(kubectl -n "$ns" get pod "$pod" -o jsonpath='{.spec.containers[0].securityContext.readOnlyRootFilesystem}') == true ]] \
    || fail "readOnlyRootFilesystem is not set"
  # What the kernel says, from the node: the process's uid and its root mount.
  node="$KIND_CLUSTER-control-plane"
  pid="$(docker exec "$node" pgrep -f '^/usr/local/bin/konflux-telemetry run' | head -n 1)"
  [[ -n $pid ]] || fail "no konflux-telemetry process on the node"
  uid="$(docker exec "$node" awk '/^Uid:/ {print $2}' "/proc/$pid/status")"
  [[ $uid == 65532 ]] || fail "the daemon runs as uid $uid, not 65532"
  docker exec "$node" awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | grep -q '^ro' \
    || fail "the daemon's root filesystem is writable"
  note "uid $uid, root filesystem read-only, ServiceAccount konflux-telemetry"
  # Every call it makes is allowed by deploy/'s RBAC.
  if kubectl -n "$ns" logs "$pod" | grep -qi forbidden; then fail "the daemon logs a forbidden call"; fi
}

tenant_namespace_created() {
  local uid event
  uid="$(tenant "e2e-tenant-$run_id")"
  event="$(wait_event "$uid-namespace-created")"
  [[ $(jq -r .event <<<"$event") == "Namespace Created" ]] || fail "wrong event: $event"
  [[ $(jq -r .properties.namespaceHash <<<"$event") == "$(h "e2e-tenant-$run_id:$cluster_id")" ]] \
    || fail "wrong namespaceHash: $event"
}

webhook_actor_and_dry_run() {
  local tns="e2e-tenant-$run_id" dry uid marker event
  # A dry run: the webhook sees it (dryRun=true) and must not make it an event.
  dry="$(component_yaml "dry-$run_id" "$tns" | kubectl --as=alice --as-group=system:masters create --dry-run=server -o jsonpath='{.metadata.uid}' -f -)"
  [[ -n $dry ]] || fail "the dry run returned no uid"
  # Created as user alice, through the API server, which calls the webhook through its Service.
  uid="$(component_yaml "comp-$run_id" "$tns" | kubectl --as=alice --as-group=system:masters create -o jsonpath='{.metadata.uid}' -f -)"
  event="$(wait_event "$uid-component-created")"
  [[ $(jq -r .event <<<"$event") == "Component Created" ]] || fail "wrong event: $event"
  [[ $(jq -r .properties.actorHash <<<"$event") == "$(h "alice:$cluster_id")" ]] || fail "actorHash is not h(alice:$cluster_id): $event"
  [[ $(jq 'has("userId")' <<<"$event") == false ]] || fail "the event has a userId: $event"
  [[ $(jq -r .properties.actorType <<<"$event") == user ]] || fail "actorType is not user: $event"
  # The marker: a later Component's event has arrived, the dry run's has not.
  marker="$(component_yaml "marker-$run_id" "$tns" | kubectl create -o jsonpath='{.metadata.uid}' -f -)"
  wait_event "$marker-component-created" >/dev/null
  (($(count "$dry-component-created") == 0)) || fail "the dry run was sent"
  note "Component Created with actorHash h(alice) and no userId, the dry run not sent"
}

pipelinerun_lifecycle() {
  local tns="e2e-tenant-$run_id" name="run-$run_id" uid started completed now
  uid="$(kubectl -n "$tns" create -o jsonpath='{.metadata.uid}' -f - <<YAML
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: $name
  namespace: $tns
  labels:
    pipelines.appstudio.openshift.io/type: build
spec:
  pipelineRef:
    name: build
YAML
)"
  now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  kubectl -n "$tns" patch pipelinerun "$name" --subresource=status --type=merge \
    -p "{\"status\":{\"startTime\":\"$now\",\"conditions\":[{\"type\":\"Succeeded\",\"status\":\"Unknown\",\"reason\":\"Running\"}]}}" >/dev/null
  started="$(wait_event "$uid-started")"
  [[ $(jq -r .event <<<"$started") == "PipelineRun Started" ]] || fail "wrong event: $started"
  kubectl -n "$tns" patch pipelinerun "$name" --subresource=status --type=merge \
    -p "{\"status\":{\"completionTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"conditions\":[{\"type\":\"Succeeded\",\"status\":\"True\",\"reason\":\"Succeeded\"}]}}" >/dev/null
  completed="$(wait_event "$uid-completed")"
  [[ $(jq -r .event <<<"$completed") == "PipelineRun Completed" ]] || fail "wrong event: $completed"
  [[ $(jq -r .properties.status <<<"$completed") == Succeeded ]] || fail "wrong status: $completed"
}

konflux_cr_lifecycle() {
  local uid event
  uid="$(kubectl create -o jsonpath='{.metadata.uid}' -f - <<YAML
apiVersion: konflux.konflux-ci.dev/v1alpha1
kind: Konflux
metadata:
  name: konflux
spec: {}
YAML
)"
  event="$(wait_event "$uid-started")"
  [[ $(jq -r .event <<<"$event") == "Operator Deployment Started" ]] || fail "wrong event: $event"
  kubectl patch konflux konflux --subresource=status --type=merge -p "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"AllComponentsReady\",\"message\":\"\",\"lastTransitionTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}]}}" >/dev/null
  event="$(wait_event "$uid-completed")"
  [[ $(jq -r .event <<<"$event") == "Operator Deployment Completed" ]] || fail "wrong event: $event"
  kubectl --as=bob --as-group=system:masters delete konflux konflux >/dev/null
  event="$(wait_event "$uid-removal-started")"
  [[ $(jq -r .event <<<"$event") == "Operator Removal Started" ]] || fail "wrong event: $event"
}

settings_change_without_restart() {
  local pod uid restarts
  pod="$(daemon_pod)"
  restarts="$(kubectl -n "$ns" get pod "$pod" -o jsonpath='{.status.containerStatuses[0].restartCount}')"
  set_flush 1h 3600
  uid="$(tenant "e2e-held-$run_id")"
  # Held: produced and buffered, not sent within the hour.
  poll 60 "the daemon to buffer the held namespace's event" buffered_at_least 1
  (($(count "$uid-namespace-created") == 0)) || fail "sent although flushInterval is 1h"
  set_flush 2s 2
  wait_event "$uid-namespace-created" >/dev/null
  [[ $(daemon_pod) == "$pod" ]] || fail "the Pod changed"
  [[ $(kubectl -n "$ns" get pod "$pod" -o jsonpath='{.status.containerStatuses[0].restartCount}') == "$restarts" ]] \
    || fail "the container restarted"
  note "flushInterval 1h -> 2s applied by the running Pod $pod"
}

sigterm_final_flush() {
  local pod uid marker
  set_flush 1h 3600
  uid="$(tenant "e2e-sigterm-$run_id")"
  poll 60 "the daemon to buffer the namespace's event" buffered_at_least 1
  pod="$(daemon_pod)"
  # SIGTERM, and the grace period (deploy/: 40s) to flush; only the final flush can send
  # the event within the hour.
  kubectl -n "$ns" delete pod "$pod" --wait=false >/dev/null
  wait_event "$uid-namespace-created" 40 >/dev/null
  note "the final flush sent the buffered event"
  wait_daemon_ready
  set_flush 2s 2
  marker="$(tenant "e2e-after-sigterm-$run_id")"
  wait_event "$marker-namespace-created" >/dev/null
  no_duplicates
}

rollout_restart_sends_nothing_twice() {
  local marker
  kubectl -n "$ns" rollout restart deploy/konflux-telemetry >/dev/null
  wait_daemon_ready
  marker="$(tenant "e2e-after-restart-$run_id")"
  wait_event "$marker-namespace-created" >/dev/null
  no_duplicates
}

creations_succeed_without_webhook() {
  local tns="e2e-tenant-$run_id" uid
  kubectl -n "$ns" scale deploy/konflux-telemetry --replicas=0 >/dev/null
  poll 60 "the daemon Pod to be gone" bash -c "[[ -z \"\$(kubectl -n $ns get pods -l app.kubernetes.io/name=konflux-telemetry -o name)\" ]]"
  # failurePolicy Ignore: the API server goes on without the webhook.
  uid="$(component_yaml "nowebhook-$run_id" "$tns" | kubectl create -o jsonpath='{.metadata.uid}' -f -)"
  [[ -n $uid ]] || fail "the creation failed"
  kubectl -n "$ns" scale deploy/konflux-telemetry --replicas=1 >/dev/null
  wait_daemon_ready
  # Nothing lost: the watch's list finds it once the daemon is back.
  wait_event "$uid-component-created" >/dev/null
  no_duplicates
}

uninstall_leaves_nothing() {
  local left
  kubectl delete -k "$deploy" --wait=true --timeout=120s >/dev/null
  kubectl delete -f "$(dirname "$0")/sink.yaml" --ignore-not-found --wait=true >/dev/null
  # Every object the overlay makes, and anything else labelled as ours.
  left="$(kubectl kustomize "$deploy" | kubectl get -f - --ignore-not-found -o name 2>/dev/null || true)"
  left+="$(kubectl get clusterroles,clusterrolebindings,validatingwebhookconfigurations,mutatingwebhookconfigurations \
    -l app.kubernetes.io/name=konflux-telemetry -o name 2>/dev/null)"
  left+="$(kubectl get roles,rolebindings,configmaps,secrets,leases -A -l app.kubernetes.io/name=konflux-telemetry -o name 2>/dev/null)"
  if kubectl get namespace "$ns" >/dev/null 2>&1; then left+=" namespace/$ns"; fi
  [[ -z ${left// /} ]] || fail "left behind: $left"
}

# --- run -------------------------------------------------------------------------------
checks=(
  pod_ready_confined
  tenant_namespace_created
  webhook_actor_and_dry_run
  pipelinerun_lifecycle
  konflux_cr_lifecycle
  settings_change_without_restart
  sigterm_final_flush
  rollout_restart_sends_nothing_twice
  creations_succeed_without_webhook
  uninstall_leaves_nothing
)
passed=0
failed=0
for c in "${checks[@]}"; do
  t=$SECONDS
  set +e
  (set -euo pipefail; "$c") 2>"$work/$c.log"
  rc=$?
  set -e
  if ((rc == 0)); then
    passed=$((passed + 1))
    echo "ok     $c ($((SECONDS - t))s)"
  else
    failed=$((failed + 1))
    echo "FAILED $c ($((SECONDS - t))s)"
  fi
  sed 's/^/       /' "$work/$c.log"
done
echo "kind-e2e: $passed passed, $failed failed"
((failed == 0))
