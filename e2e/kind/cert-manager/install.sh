#!/usr/bin/env bash
# cert-manager on a kind cluster, with no registry: for make kind-e2e (kind-e2e.sh).
#
#   cert-manager/install.sh CLUSTER
#
# 1. the controller and cainjector binaries (build.sh: from the Go module, cached);
# 2. each alone on scratch (user 65532), tagged konflux-telemetry/cert-manager-<name>:
#    <version>-<key of the build>, built once, then `kind load`ed into CLUSTER;
# 3. cert-manager's CRDs from the pinned module's deploy/crds (crds.sh: plain YAML, no
#    Helm templating, in the Go module cache);
# 4. cert-manager.yaml (namespace, RBAC, the two Deployments), waited for.
# Needs KUBECONFIG for CLUSTER, kubectl, kind, docker, Go and jq on PATH.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cluster="${1:?usage: install.sh CLUSTER}"
start=$SECONDS

log() { echo "cert-manager: $* ($((SECONDS - start))s)" >&2; }
die() { log "error: $*"; exit 1; }

declare -A bin
while read -r name path; do bin[$name]=$path; done < <(bash "$here/build.sh")
version="$(awk '$1 == "github.com/cert-manager/cert-manager" {print $2; exit}' "$here/binaries/go.mod")"

# --- images ----------------------------------------------------------------------------
declare -A image
for name in controller cainjector; do
  path="${bin[$name]:-}"
  [[ -x $path ]] || die "build.sh gave no $name"
  # The cache directory's name carries the version and the key of the build.
  tag="konflux-telemetry/cert-manager-$name:$(basename "$(dirname "$path")" | sed 's/^cert-manager-//')"
  image[$name]=$tag
  docker image inspect "$tag" >/dev/null 2>&1 && continue
  ctx="$(mktemp -d)"
  install -D -m 0755 "$path" "$ctx/usr/local/bin/$name"
  mkdir -p "$ctx/etc"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$ctx/etc/passwd"
  printf 'FROM scratch\nCOPY etc/passwd /etc/passwd\nCOPY usr/local/bin/%s /usr/local/bin/%s\nUSER 65532:65532\nENTRYPOINT ["/usr/local/bin/%s"]\n' \
    "$name" "$name" "$name" >"$ctx/Containerfile"
  docker build -q -f "$ctx/Containerfile" -t "$tag" "$ctx" >/dev/null || { rm -rf "$ctx"; die "docker build of $tag failed"; }
  rm -rf "$ctx"
  log "built $tag"
done
kind load docker-image "${image[controller]}" "${image[cainjector]}" --name "$cluster" >/dev/null
log "loaded ${image[controller]} ${image[cainjector]}"

# --- CRDs ------------------------------------------------------------------------------
crds="$(bash "$here/crds.sh")"
# Server-side: the Issuer CRDs are too large for the last-applied annotation.
for f in "$crds"/*.yaml; do
  kubectl apply --server-side --force-conflicts -f "$f" >/dev/null
done
for f in "$crds"/*.yaml; do
  kubectl wait --for=condition=Established --timeout=60s -f "$f" >/dev/null
done

# --- controller and cainjector ---------------------------------------------------------
sed -e "s|CONTROLLER_IMAGE|${image[controller]}|" -e "s|CAINJECTOR_IMAGE|${image[cainjector]}|" \
  "$here/cert-manager.yaml" | kubectl apply -f - >/dev/null
kubectl -n cert-manager rollout status deploy/cert-manager --timeout=120s >&2
kubectl -n cert-manager rollout status deploy/cert-manager-cainjector --timeout=120s >&2
# A container that exits at start (a refused call) was Ready for a moment: it must not
# have restarted.
restarts="$(kubectl -n cert-manager get pods -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount}{" "}{end}')"
if [[ ! $restarts =~ ^(0 )+$ ]]; then
  for d in cert-manager cert-manager-cainjector; do
    kubectl -n cert-manager logs "deploy/$d" --previous --tail=15 >&2 2>/dev/null || true
  done
  die "a cert-manager container restarted (restarts: $restarts); the last lines before it are above"
fi
log "cert-manager $version running"
