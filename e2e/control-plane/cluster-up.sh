#!/usr/bin/env bash
# Start a real, local Kubernetes control plane for the integration tests:
# etcd + kube-apiserver built from source (see build.sh), listening on free
# loopback ports only, with generated certificates, RBAC, the TokenRequest API
# and the CRDs in e2e/crds/ installed and Established.
#
# State (certificates, etcd data, logs, pids, kubeconfig) lives in .cluster/ at
# the repository root. `source .cluster/env` to use it from a shell.
#
# Idempotent: when the cluster is already up and healthy, it only makes sure the
# CRDs in e2e/crds/ are installed and Established (applying them again if one is
# missing: a `make demo` needs them).
#
# Environment knobs (all optional):
#   CLUSTER_APISERVER_PORT, CLUSTER_ETCD_PORT, CLUSTER_ETCD_PEER_PORT
#       fixed ports instead of free ones picked at random
#   CLUSTER_READY_TIMEOUT   seconds to wait for /readyz (default 120)
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_time=$SECONDS
ready_timeout="${CLUSTER_READY_TIMEOUT:-120}"

for tool in openssl curl flock base64; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found: run 'bash e2e/control-plane/install-deps.sh' (or apt-get install ${tool/flock/util-linux})"
done

mkdir -p "$state_dir"
# One cluster-up/cluster-down at a time (parallel test binaries, make, ...).
exec 9>"$state_dir/lock"
flock -w 3600 9 || die "timed out waiting for another cluster-up/cluster-down (lock $state_dir/lock)"

kubeconfig="$state_dir/kubeconfig"
pki="$state_dir/pki"

api_ready() {
  local port
  port="$(state_get KUBE_APISERVER_PORT)" || return 1
  [[ -n $port ]] || return 1
  curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$port/readyz" >/dev/null 2>&1
}

# Applies the CRDs in e2e/crds/ with the kubectl given as arguments and waits until
# they are Established (apply is idempotent: on a running cluster it restores what is
# missing and leaves the rest).
install_crds() {
  # Server-side: the real Konflux CRD is too large for the last-applied annotation.
  "$@" apply --server-side --force-conflicts -f "$repo_root/e2e/crds/" >"$state_dir/logs/crds.log" 2>&1 ||
    { cat "$state_dir/logs/crds.log" >&2; die "installing the CRDs in e2e/crds failed"; }
  # --recursive=false: like apply above, only e2e/crds/*.yaml (kubectl wait recurses by
  # default and would wait for e2e/crds/monitoring/, which tests/deploy.rs installs itself).
  "$@" wait --for=condition=Established --timeout=60s --recursive=false -f "$repo_root/e2e/crds/" \
    >>"$state_dir/logs/crds.log" 2>&1 ||
    { cat "$state_dir/logs/crds.log" >&2; die "the CRDs in e2e/crds did not become Established"; }
}

# --- already running? -------------------------------------------------------
if [[ -f $state_dir/env && -f $kubeconfig ]] &&
  pid_alive "$state_dir/etcd.pid" && pid_alive "$state_dir/kube-apiserver.pid"; then
  for ((i = 0; i < 20; i++)); do
    if api_ready; then
      log "already running: kube-apiserver $(state_get KUBE_APISERVER), etcd $(state_get ETCD_ENDPOINT) (pids $(<"$state_dir/kube-apiserver.pid"), $(<"$state_dir/etcd.pid"))"
      [[ -x $state_dir/bin/kubectl ]] || die "no kubectl in $state_dir/bin: run 'make cluster-down cluster-up'"
      mkdir -p "$state_dir/logs"
      install_crds "$state_dir/bin/kubectl" --kubeconfig "$kubeconfig"
      log "CRDs installed and Established: $(cd "$repo_root/e2e/crds" && for f in *.yaml; do printf '%s ' "${f%.yaml}"; done)"
      log "use it with: source .cluster/env"
      exit 0
    fi
    sleep 1
  done
  log "processes are alive but the API server is not ready; restarting from scratch"
fi
if compgen -G "$state_dir/*.pid" >/dev/null || [[ -e $state_dir/env || -d $state_dir/etcd-data ]]; then
  log "found stale state in $state_dir; cleaning up"
  stop_all
fi
# Fresh state (keep the lock file we hold, and Tekton Results' state: it does not
# depend on the API server and has its own up/down scripts).
find "$state_dir" -mindepth 1 -maxdepth 1 ! -name lock ! -name 'results*' ! -name konflux-cr.lock -exec rm -rf {} +
mkdir -p "$state_dir/bin" "$pki" "$state_dir/logs"

# --- binaries ---------------------------------------------------------------
declare -A bin
while read -r name path; do
  bin[$name]="$path"
  ln -sfn "$path" "$state_dir/bin/$name"
done < <(bash "$cp_dir/build.sh" kube-apiserver etcd kubectl)
for name in kube-apiserver etcd kubectl; do
  [[ -x ${bin[$name]:-} ]] || die "build.sh did not produce $name"
done

# --- ports ------------------------------------------------------------------
etcd_port="" etcd_peer_port="" api_port=""
pick_port etcd_port "${CLUSTER_ETCD_PORT:-}"
pick_port etcd_peer_port "${CLUSTER_ETCD_PEER_PORT:-}"
pick_port api_port "${CLUSTER_APISERVER_PORT:-}"

# --- certificates -----------------------------------------------------------
new_ca "$pki" konflux-telemetry-test-ca \
  "IP:127.0.0.1, IP:10.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local" \
  client
issue_cert "$pki" apiserver "/CN=kube-apiserver" serving
issue_cert "$pki" admin "/O=system:masters/CN=konflux-telemetry-admin" client
# Service-account token signing key pair (TokenRequest API).
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key"
ossl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
chmod 600 "$pki"/*.key

# --- etcd -------------------------------------------------------------------
etcd_url="http://127.0.0.1:$etcd_port"
log "starting etcd on $etcd_url"
# Plain HTTP on loopback only, so tests can reach the v3 JSON gateway
# (e.g. POST /v3/kv/compaction) with curl.
setsid "${bin[etcd]}" \
  --name=konflux-telemetry-test \
  --data-dir="$state_dir/etcd-data" \
  --listen-client-urls="$etcd_url" \
  --advertise-client-urls="$etcd_url" \
  --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
  --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster="konflux-telemetry-test=http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster-state=new \
  --unsafe-no-fsync \
  --log-level=warn \
  </dev/null >"$state_dir/logs/etcd.log" 2>&1 9>&- &
echo $! >"$state_dir/etcd.pid"

rerun="'make cluster-up'"
wait_for etcd "$state_dir/etcd.pid" "$state_dir/logs/etcd.log" 60 \
  curl -fsS --max-time 2 "$etcd_url/health"

# --- kube-apiserver ---------------------------------------------------------
api_url="https://127.0.0.1:$api_port"
issuer="https://kubernetes.default.svc.cluster.local"
log "starting kube-apiserver on $api_url"
setsid "${bin[kube-apiserver]}" \
  --etcd-servers="$etcd_url" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$api_port" \
  --endpoint-reconciler-type=none \
  --tls-cert-file="$pki/apiserver.crt" \
  --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --cert-dir="$pki" \
  --authorization-mode=RBAC \
  --service-account-issuer="$issuer" \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --api-audiences="$issuer" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --allow-privileged=true \
  --profiling=false \
  </dev/null >"$state_dir/logs/kube-apiserver.log" 2>&1 9>&- &
echo $! >"$state_dir/kube-apiserver.pid"

# The kubeconfig: admin client certificate (O=system:masters = cluster-admin).
b64() { base64 -w0 <"$1"; }
cat >"$kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: konflux-telemetry-test
  cluster:
    server: $api_url
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: konflux-telemetry-admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: konflux-telemetry-test
  context:
    cluster: konflux-telemetry-test
    user: konflux-telemetry-admin
current-context: konflux-telemetry-test
EOF
chmod 600 "$kubeconfig"

cat >"$state_dir/env" <<EOF
# Written by e2e/control-plane/cluster-up.sh. Use: source .cluster/env
export KUBECONFIG=$kubeconfig
export PATH=$state_dir/bin:\$PATH
export KUBE_APISERVER=$api_url
export KUBE_APISERVER_PORT=$api_port
export ETCD_ENDPOINT=$etcd_url
EOF

wait_for kube-apiserver "$state_dir/kube-apiserver.pid" "$state_dir/logs/kube-apiserver.log" "$ready_timeout" \
  api_ready

# --- CRDs -------------------------------------------------------------------
kubectl=("${bin[kubectl]}" --kubeconfig "$kubeconfig")
install_crds "${kubectl[@]}"

log "up in $((SECONDS - start_time))s: kube-apiserver $api_url, etcd $etcd_url"
log "kube-apiserver $("${kubectl[@]}" version -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -n1), CRDs: $(cd "$repo_root/e2e/crds" && for f in *.yaml; do printf '%s ' "${f%.yaml}"; done)"
log "use it with: source .cluster/env"
