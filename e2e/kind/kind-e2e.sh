#!/usr/bin/env bash
# make kind-e2e: the deployment end to end on a kind cluster.
#   1. create a kind cluster (name: $KIND_CLUSTER, default konflux-telemetry-e2e)
#   2. build the image (make image) and load it into the cluster
#   3. install e2e/crds/, namespace konflux-info, the webhook certificates,
#      deploy/overlays/kind (with the webhook's caBundle filled in) and the sink
#      (e2e/kind/sink.yaml)
#   4. check the in-cluster daemon: ready, a tenant Namespace reaches the sink
#   5. run the e2e suite against the cluster (KUBECONFIG):
#      cargo test --release --test cluster --test daemon
#   6. delete the cluster (trap, also on failure; KEEP_CLUSTER=1 keeps it)
# Needs: kind, kubectl, docker or podman, openssl, cargo.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
cluster="${KIND_CLUSTER:-konflux-telemetry-e2e}"
image="${IMAGE:-konflux-telemetry:dev}"
ns=segment-bridge

say() { printf 'kind-e2e: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

for tool in kind kubectl openssl cargo; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

work="$(mktemp -d)"
export KUBECONFIG="$work/kubeconfig"

cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    say "failed; daemon and sink logs follow"
    kubectl -n "$ns" logs deploy/konflux-telemetry --tail=100 >&2 2>/dev/null || true
    kubectl -n "$ns" logs deploy/segment-sink --tail=20 >&2 2>/dev/null || true
  fi
  if [[ "${KEEP_CLUSTER:-0}" == 1 ]]; then
    say "keeping cluster $cluster (KUBECONFIG=$KUBECONFIG)"
  else
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT

say "creating kind cluster $cluster"
kind create cluster --name "$cluster" --kubeconfig "$KUBECONFIG" --wait 120s

say "building $image"
make image IMAGE="$image"
if command -v docker >/dev/null 2>&1 && docker image inspect "$image" >/dev/null 2>&1; then
  kind load docker-image "$image" --name "$cluster"
else
  # podman: load through an archive (KIND_EXPERIMENTAL_PROVIDER=podman works as well).
  podman save "$image" -o "$work/image.tar"
  kind load image-archive "$work/image.tar" --name "$cluster"
fi

say "installing the CRDs and konflux-info"
kubectl apply -f e2e/crds/
kubectl wait --for=condition=Established --timeout=60s -f e2e/crds/
kubectl create namespace konflux-info --dry-run=client -o yaml | kubectl apply -f -

# Webhook serving certificate for konflux-telemetry.segment-bridge.svc, signed by a
# throw-away CA: webhook-certs/make-certs.sh (`make certs`) when present, else openssl here.
say "making the webhook certificates"
if [[ -f webhook-certs/make-certs.sh ]]; then
  bash webhook-certs/make-certs.sh "$work/certs" >&2
  cp "$work/certs/ca.crt" "$work/certs/tls.crt" "$work/certs/tls.key" "$work/"
else
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=konflux-telemetry-e2e-ca" \
    -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=konflux-telemetry.$ns.svc" \
    -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
  printf 'subjectAltName=DNS:konflux-telemetry.%s.svc,DNS:konflux-telemetry.%s.svc.cluster.local\n' "$ns" "$ns" \
    >"$work/san.ext"
  openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
    -days 1 -extfile "$work/san.ext" -out "$work/tls.crt" 2>/dev/null
fi

# The overlay's caBundle patch is filled in a copy of deploy/, never in the checkout.
cp -r deploy "$work/deploy"
ca_b64="$(base64 -w0 <"$work/ca.crt")"
sed -i "s|caBundle: \"\"|caBundle: \"$ca_b64\"|" "$work/deploy/overlays/kind/webhook-ca-patch.yaml"
grep -q "$ca_b64" "$work/deploy/overlays/kind/webhook-ca-patch.yaml" || die "could not fill the caBundle"

say "applying deploy/overlays/kind and the sink"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$ns" create secret tls konflux-telemetry-webhook-certs \
  --cert="$work/tls.crt" --key="$work/tls.key" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f e2e/kind/sink.yaml
kubectl apply -k "$work/deploy/overlays/kind"
kubectl -n "$ns" rollout status deploy/segment-sink --timeout=120s
kubectl -n "$ns" rollout status deploy/konflux-telemetry --timeout=120s

say "checking the in-cluster daemon: a tenant namespace reaches the sink"
tenant="kind-e2e-tenant-$RANDOM"
kubectl create namespace "$tenant"
kubectl label namespace "$tenant" konflux-ci.dev/type=tenant
uid="$(kubectl get namespace "$tenant" -o jsonpath='{.metadata.uid}')"
found=0
for _ in $(seq 60); do
  if kubectl -n "$ns" logs deploy/segment-sink 2>/dev/null | grep -q "\"$uid-namespace-created\""; then
    found=1
    break
  fi
  sleep 2
done
[[ $found == 1 ]] || die "event $uid-namespace-created did not reach the sink within 120s"
if kubectl -n "$ns" logs deploy/konflux-telemetry | grep -qi forbidden; then
  die "the daemon logs a forbidden call: deploy/base/rbac.yaml lacks a rule"
fi
kubectl delete namespace "$tenant" --wait=false

say "running the e2e suite against kind (KUBECONFIG=$KUBECONFIG)"
cargo test --release --test cluster --test daemon --test deploy

say "passed"
