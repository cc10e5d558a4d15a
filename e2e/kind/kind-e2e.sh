#!/usr/bin/env bash
# make kind-e2e: the daemon as users install it -- the image, as a Pod from
# deploy/overlays/kind, its webhook called by the API server through its Service -- on a
# real kind cluster, then the suite in suite.sh. Ends with `kind-e2e: N passed, M failed`.
#
#   1. tools: kind (built from its Go module, cached), kubectl (the cached build of
#      e2e/control-plane), a Docker engine (engine/docker-engine.sh: the running one, else
#      Debian's dockerd started for this run and stopped after it)
#   2. the node image: node-image/build.sh (KIND_NODE_IMAGE, else kind's published one,
#      else built here once and cached)
#   3. the image: image/build.sh (make image), loaded into the node
#   4. the cluster: e2e/crds/, konflux-info as Konflux makes it (konflux-info.yaml: the
#      namespace and the Role letting every authenticated user get konflux-public-info),
#      cert-manager (cert-manager/install.sh: its controller and cainjector built from its
#      Go module, cached), the sink (sink.yaml) and deploy/overlays/kind (applied from a
#      copy): its Certificate first, waited for, then the rest; the webhook's caBundle is
#      cert-manager's (cert-manager.io/inject-ca-from), checked against the Secret's CA.
#      webhook-certs/ stays the way for clusters without cert-manager (docs/deploy.md)
#   5. suite.sh
#   6. the cluster is deleted (also on failure), unless KEEP_CLUSTER=1: then it stays, and
#      the KUBECONFIG to use is printed
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
cluster="${KIND_CLUSTER:-konflux-telemetry-e2e}"
export IMAGE="${IMAGE:-konflux-telemetry:dev}"
export SINK_IMAGE="${SINK_IMAGE:-konflux-telemetry-sink:dev}"
cache_root="${KONFLUX_TELEMETRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/konflux-telemetry}"
ns=segment-bridge
start=$SECONDS

say() { printf 'kind-e2e: %s (%ss)\n' "$*" "$((SECONDS - start))" >&2; }
die() { say "error: $*"; exit 1; }

# --- 1. tools --------------------------------------------------------------------------
kind_bin="$(bash "$here/install-deps.sh")"
PATH="$(dirname "$kind_bin"):$PATH"
kubectl_bin="$(bash e2e/control-plane/build.sh kubectl | awk '{print $2}')"
PATH="$(dirname "$kubectl_bin"):$PATH"
export PATH
for tool in kind kubectl docker go jq; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

work="$cache_root/kind-e2e/$cluster"
rm -rf "$work"
mkdir -p "$work"
export KUBECONFIG="$work/kubeconfig"
engine_started=0

cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]] && [[ -s $KUBECONFIG ]]; then
    say "failed (exit $rc); what the cluster says follows"
    kubectl -n "$ns" get pods -o wide >&2 2>/dev/null || true
    kubectl -n "$ns" logs deploy/konflux-telemetry --tail=60 >&2 2>/dev/null || true
    kubectl -n "$ns" logs deploy/segment-sink --tail=10 >&2 2>/dev/null || true
    kubectl -n "$ns" get certificates,certificaterequests -o wide >&2 2>/dev/null || true
    kubectl -n cert-manager logs deploy/cert-manager --tail=20 >&2 2>/dev/null || true
    kubectl -n cert-manager logs deploy/cert-manager-cainjector --tail=10 >&2 2>/dev/null || true
  fi
  if [[ ${KEEP_CLUSTER:-0} == 1 ]]; then
    say "keeping cluster $cluster and the Docker engine; to use it:"
    echo "export KUBECONFIG=$KUBECONFIG PATH=$(dirname "$kind_bin"):$(dirname "$kubectl_bin"):\$PATH" >&2
    echo "delete it with: kind delete cluster --name $cluster && bash $here/engine/docker-engine.sh stop" >&2
  else
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
    ((engine_started == 0)) || bash "$here/engine/docker-engine.sh" stop || true
  fi
  exit "$rc"
}
trap cleanup EXIT

if ! timeout 10 docker info >/dev/null 2>&1; then engine_started=1; fi
bash "$here/engine/docker-engine.sh" start

# --- 2. node image, 3. image -----------------------------------------------------------
say "node image"
node_image="$(bash "$here/node-image/build.sh")"
say "image $IMAGE"
bash image/build.sh

# --- 4. cluster ------------------------------------------------------------------------
config="$here/kind-config.yaml"
if [[ $node_image != konflux-telemetry/* ]]; then
  # A published node image brings kindnetd: keep kind's default CNI.
  config="$work/kind-config.yaml"
  sed 's/disableDefaultCNI: true/disableDefaultCNI: false/' "$here/kind-config.yaml" >"$config"
fi
kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
say "creating kind cluster $cluster on $node_image"
kind create cluster --name "$cluster" --kubeconfig "$KUBECONFIG" --image "$node_image" \
  --config "$config" --wait 180s
if [[ $node_image == konflux-telemetry/* ]]; then
  # CoreDNS and local-path are stand-ins there (the e2e needs no cluster DNS and no
  # volumes): do not let them run.
  kubectl -n kube-system scale deployment coredns --replicas=0 >/dev/null
  kubectl -n local-path-storage scale deployment local-path-provisioner --replicas=0 >/dev/null
fi
# A connection to a Service's cluster IP that kube-proxy has not programmed yet leaves the
# node untranslated. Where the machine's egress is intercepted (this one's answers any
# address on 443 with a foreign certificate, and HTTP with 404), it meets a stranger, and
# a client that keeps the connection keeps the stranger: cert-manager restarted on
# "x509: ... doesn't contain any IP SANs", and the daemon's pooled connection to the sink
# got 404 for good. kube-proxy programs a Service a few seconds after the node is Ready,
# and after its first ready endpoint: each client below starts only once the Services it
# calls are programmed.
node="$cluster-control-plane"
# service_programmed NAMESPACE/NAME:PORT: the node's nat table (nft or legacy) has the
# Service's cluster IP rule.
service_programmed() {
  local rules # read whole first: `grep -q` on a pipe would end docker exec early (SIGPIPE)
  rules="$(docker exec "$node" sh -c '(iptables-nft-save -t nat; iptables-legacy-save -t nat) 2>/dev/null')"
  grep -qF "\"$1 cluster IP\"" <<<"$rules"
}
wait_service() {
  for _ in $(seq 120); do
    service_programmed "$1" && break
    sleep 1
  done
  service_programmed "$1" || die "kube-proxy did not program Service $1 on $node within 120s"
  say "kube-proxy has programmed Service $1"
}
wait_service default/kubernetes:https
kind load docker-image "$IMAGE" "$SINK_IMAGE" --name "$cluster"

say "installing the CRDs and konflux-info"
# Server-side: the real Konflux CRD is too large for the last-applied annotation.
kubectl apply --server-side --force-conflicts -R -f e2e/crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -R -f e2e/crds/ >/dev/null
# konflux-info as Konflux leaves it: every authenticated user may get konflux-public-info.
kubectl apply -f "$here/konflux-info.yaml" >/dev/null

say "installing cert-manager (e2e/kind/cert-manager)"
bash "$here/cert-manager/install.sh" "$cluster"

say "applying deploy/overlays/kind and the sink"
cp -r deploy "$work/deploy"
overlay="$work/deploy/overlays/kind"
# The webhook's Certificate (and its Issuer) first, so that the daemon's Pod starts with
# the Secret cert-manager writes, then all of the overlay.
kubectl kustomize "$overlay" >"$work/overlay.yaml"
jq -s '{apiVersion: "v1", kind: "List", items: [.[] | select(.kind == "Namespace" or .kind == "Issuer" or .kind == "Certificate")]}' \
  < <(kubectl create --dry-run=client -o json -f "$work/overlay.yaml") | kubectl apply -f - >/dev/null
kubectl -n "$ns" wait --for=condition=Ready --timeout=120s certificate/konflux-telemetry-webhook >/dev/null \
  || die "cert-manager did not issue the webhook's certificate"
kubectl apply -f "$here/sink.yaml" >/dev/null
kubectl -n "$ns" rollout status deploy/segment-sink --timeout=120s >&2
wait_service "$ns/segment-sink:http" # before the daemon, which sends to it
kubectl apply -f "$work/overlay.yaml" >/dev/null
# cert-manager's cainjector fills the webhook configuration's caBundle with the CA of the
# Secret (cert-manager.io/inject-ca-from).
ca="$(kubectl -n "$ns" get secret konflux-telemetry-webhook-certs -o jsonpath='{.data.ca\.crt}')"
[[ -n $ca ]] || die "the webhook's Secret has no ca.crt"
for _ in $(seq 60); do
  injected="$(kubectl get validatingwebhookconfiguration konflux-telemetry -o jsonpath='{.webhooks[0].clientConfig.caBundle}')"
  [[ $injected == "$ca" ]] && break
  sleep 1
done
[[ $injected == "$ca" ]] || die "cainjector did not inject the webhook's CA into its configuration"
kubectl -n "$ns" rollout status deploy/konflux-telemetry --timeout=120s >&2
wait_service "$ns/konflux-telemetry:webhook" # the API server calls the webhook through it
say "deployed"

# --- 5. suite --------------------------------------------------------------------------
E2E_WORK="$work" E2E_DEPLOY="$overlay" KIND_CLUSTER="$cluster" bash "$here/suite.sh"
