#!/usr/bin/env bash
# The kind node image for make kind-e2e; prints its name on stdout.
#
#   node-image/build.sh
#
# 1. $KIND_NODE_IMAGE when set (pulled if it is not present);
# 2. else kind's published node image for the pinned Kubernetes version, where a
#    registry can be reached (KIND_NODE_PULL=0 skips the attempt);
# 3. else one built here from Go modules and Debian packages, no registry involved:
#    - the Kubernetes commands and etcd from e2e/control-plane/build.sh (the same
#      cached binaries as the local test API server: nothing is compiled twice);
#    - a base image: `debootstrap --variant=minbase` of Debian (systemd, containerd 1.6,
#      runc, CNI plugins, iptables), plus kind's own files from its Go module, a ctr shim
#      (ctr-for-containerd-1.6) and a static ptp CNI config in place of kindnetd;
#    - the control-plane images FROM scratch, pause from pause.c, kube-proxy on the base
#      (it needs iptables); the images kind always preloads (kindnetd, local-path, and
#      CoreDNS, which the e2e does not use) as stand-ins that run pause;
#    - `kind build node-image --type file` on that layout.
#    Tagged konflux-telemetry/kind-node:<kube version>-<hash of every input>, so it is
#    built once and again only when a pinned version or one of these files changes.
#
# Needs a Docker engine (engine/docker-engine.sh), kind, Go, gcc, debootstrap, jq, python3.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
# shellcheck source=../../control-plane/versions.env
source "$root/e2e/control-plane/versions.env"
# shellcheck source=../versions.env
source "$here/../versions.env"
cache_root="${KONFLUX_TELEMETRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/konflux-telemetry}"

log() { echo "node-image: $*" >&2; }
die() { log "error: $*"; exit 1; }
# kind from the cache (built once by install-deps.sh) when the caller has none on PATH
# (.ci/run starts this script on its own, beside the Go builds).
command -v kind >/dev/null 2>&1 || PATH="$(dirname "$(bash "$here/../install-deps.sh")"):$PATH"

if [[ -n ${KIND_NODE_IMAGE:-} ]]; then
  docker image inspect "$KIND_NODE_IMAGE" >/dev/null 2>&1 || docker pull "$KIND_NODE_IMAGE" >&2 \
    || die "KIND_NODE_IMAGE=$KIND_NODE_IMAGE is neither present nor pullable"
  echo "$KIND_NODE_IMAGE"
  exit 0
fi

key="$(cat "$root/e2e/control-plane/versions.env" "$here/../versions.env" \
  "$root/e2e/kubernetes/go.sum" "$root/e2e/control-plane/etcd/go.sum" "$here"/* | sha256sum | cut -c1-12)"
image="konflux-telemetry/kind-node:$KUBE_VERSION-$key"
if docker image inspect "$image" >/dev/null 2>&1; then
  log "using $image (built before)"
  echo "$image"
  exit 0
fi

published="docker.io/kindest/node:$KUBE_VERSION"
if [[ ${KIND_NODE_PULL:-1} != 0 ]] && timeout 300 docker pull -q "$published" >/dev/null 2>&1; then
  log "using kind's published $published"
  echo "$published"
  exit 0
fi
log "no published node image can be pulled: building $image here (once)"

start=$SECONDS
work="$cache_root/kind-node-work"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

kind_files="$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)/images/base/files"
[[ -d $kind_files ]] || die "kind $KIND_VERSION's base files not found in the Go module cache"

# --- base image (before the binaries: it needs no compiler, and can run beside a build) --
# The pause image containerd uses for sandboxes: kubeadm's, from its source in the module cache.
# `go mod download`, not `go list -m`: on a new machine the module is not in the cache yet
# (the Kubernetes build may be downloading it right now), and `go list` does not fetch it.
kube_src="$(cd "$root/e2e/kubernetes" && GOFLAGS=-mod=mod go mod download -json k8s.io/kubernetes | jq -r .Dir)"
[[ -d $kube_src ]] || die "k8s.io/kubernetes not found in the Go module cache"
pause_version="$(sed -n 's/^[[:space:]]*PauseVersion = "\(.*\)"/\1/p' "$kube_src/cmd/kubeadm/app/constants/constants.go")"
[[ -n $pause_version ]] || die "PauseVersion not found in kubeadm's constants"
pause_ref="registry.k8s.io/pause:$pause_version"
base="konflux-telemetry/kind-base:$NODE_BASE_SUITE-$key"
build_base() {
  local mirror rootfs t
  mirror="${DEBIAN_MIRROR:-}"
  if [[ -z $mirror ]]; then
    # The Debian mirror apt already uses on this machine.
    mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2; exit}')"
    [[ -n $mirror ]] || mirror="$(awk '$1 == "deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
  fi
  [[ -n $mirror ]] || die "no Debian mirror found in apt's sources; set DEBIAN_MIRROR"
  rootfs="$work/rootfs"
  log "debootstrap $NODE_BASE_SUITE from the machine's Debian mirror (a few minutes)"
  t=$SECONDS
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,iptables,nftables,conntrack,socat,ethtool,kmod,iproute2,procps,util-linux,mount,e2fsprogs,ca-certificates,jq,pigz \
    "$NODE_BASE_SUITE" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  log "debootstrap: $((SECONDS - t))s"

  install -m 0755 "$kind_files"/usr/local/bin/* "$rootfs/usr/local/bin/"
  mkdir -p "$rootfs"/kind/bin "$rootfs"/etc/{containerd,default,sysctl.d} \
    "$rootfs/etc/systemd/system/kubelet.service.d" "$rootfs/LICENSES" "$rootfs/etc/kubernetes/manifests"
  install -m 0644 "$kind_files/kind/README.txt" "$rootfs/kind/"
  install -m 0755 "$kind_files"/kind/bin/* "$rootfs/kind/bin/"
  install -m 0644 "$kind_files/etc/crictl.yaml" "$rootfs/etc/"
  install -m 0644 "$kind_files"/etc/default/* "$rootfs/etc/default/"
  install -m 0644 "$kind_files"/etc/sysctl.d/* "$rootfs/etc/sysctl.d/"
  install -m 0644 "$kind_files"/etc/systemd/system/{kubelet.slice,kubelet.service,undo-mount-hacks.service} \
    "$rootfs/etc/systemd/system/"
  install -m 0644 "$kind_files"/etc/systemd/system/kubelet.service.d/* "$rootfs/etc/systemd/system/kubelet.service.d/"
  sed 's|/usr/local/bin/containerd|/usr/bin/containerd|' "$kind_files/etc/systemd/system/containerd.service" \
    >"$rootfs/etc/systemd/system/containerd.service"
  # kind's containerd config without the fuse-overlayfs plugin (rootless only), with the pause
  # image kubeadm names, and restrict_oom_score_adj (a host without CAP_SYS_RESOURCE cannot
  # give a container an oom_score_adj below containerd's own).
  awk '/^\[proxy_plugins/ {skip = 1} /^\[plugins/ {skip = 0} !skip' "$kind_files/etc/containerd/config.toml" \
    | sed -e "s|sandbox_image = .*|sandbox_image = \"$pause_ref\"|" \
          -e 's|restrict_oom_score_adj = false|restrict_oom_score_adj = true|' >"$rootfs/etc/containerd/config.toml"
  # Debian's CNI plugins live in /usr/lib/cni; containerd looks in /opt/cni/bin.
  mkdir -p "$rootfs/opt/cni" "$rootfs/etc/cni/net.d"
  rm -rf "$rootfs/opt/cni/bin"
  ln -s /usr/lib/cni "$rootfs/opt/cni/bin"
  # No kindnetd: ptp + host-local on kind's default pod subnet (one node).
  cat >"$rootfs/etc/cni/net.d/10-ptp.conflist" <<'CNI'
{"cniVersion":"0.4.0","name":"ptp","plugins":[
 {"type":"ptp","ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]},"mtu":1500},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
CNI
  install -m 0755 "$here/ctr-for-containerd-1.6" "$rootfs/usr/local/bin/ctr"
  chroot "$rootfs" /bin/bash -euc '
    ctr oci spec \
      | jq ".hooks.createContainer[.hooks.createContainer | length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" \
      | jq "del(.process.rlimits)" >/etc/containerd/cri-base.json
    find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
    rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* /lib/systemd/system/local-fs.target.wants/*
    rm -f /lib/systemd/system/sockets.target.wants/*udev* /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
    echo "ReadKMsg=no" >>/etc/systemd/journald.conf
    ln -sf /usr/lib/systemd/systemd /sbin/init
    systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
    systemctl mask systemd-binfmt.service >/dev/null 2>&1
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*
  '
  t=$SECONDS
  tar -C "$rootfs" -c . | docker import --change 'ENV container=docker' \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' - "$base-import" >/dev/null
  # docker import --change knows no STOPSIGNAL: one build step on top.
  printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$base-import" | docker build -q -t "$base" - >/dev/null
  rm -rf "$rootfs"
  log "base image $base: $((SECONDS - t))s"
}
if docker image inspect "$base" >/dev/null 2>&1; then
  log "using $base (built before)"
else
  build_base
fi


# --- binaries (shared with the local test API server) -------------------------------
declare -A bin
while read -r name path; do bin[$name]="$path"; done < <(bash "$root/e2e/control-plane/build.sh" \
  kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubeadm kubelet kubectl etcd)
gcc -static -Os -o "$work/pause" "$here/pause.c"
strip "$work/pause"

# The images kubeadm will ask for, by their exact names.
declare -A want
while read -r ref; do
  name="${ref##*/}"
  want[${name%%:*}]="$ref"
done < <("${bin[kubeadm]}" config images list --kubernetes-version "$KUBE_VERSION" 2>/dev/null)
for n in kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd coredns pause; do
  [[ -n ${want[$n]:-} ]] || die "kubeadm config images list did not name a $n image"
done
[[ ${want[pause]} == "$pause_ref" ]] || die "kubeadm wants ${want[pause]}, the base's containerd uses $pause_ref"

# --- component images ---------------------------------------------------------------
# image NAME FROM ENTRY FILE...: an image with FILEs in /usr/local/bin, ENTRY its entry point.
image() {
  local name="$1" from="$2" entry="$3" ctx
  shift 3
  ctx="$(mktemp -d "$work/img.XXXXXX")"
  cp "$@" "$ctx/"
  {
    echo "FROM $from"
    echo "COPY . /usr/local/bin/"
    echo "ENTRYPOINT [\"/usr/local/bin/$entry\"]"
  } >"$ctx/Dockerfile"
  docker build -q -t "$name" "$ctx" >/dev/null
  rm -rf "$ctx"
}
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  image "${want[$c]}" scratch "$c" "${bin[$c]}"
done
image "${want[etcd]}" scratch etcd "${bin[etcd]}"
image "${want[pause]}" scratch pause "$work/pause"
cp "${bin[kube-proxy]}" "$work/kube-proxy.bin"
cp "$here/kube-proxy-iptables-mode" "$work/kube-proxy"
image "${want[kube-proxy]}" "$base" kube-proxy "$work/kube-proxy.bin" "$work/kube-proxy"
# Stand-ins, never used by the e2e: CoreDNS (the e2e needs no cluster DNS), kindnetd (the
# ptp config replaces it) and local-path (no volumes).
kind_mod="$(dirname "$(dirname "$(dirname "$kind_files")")")"
standins=("${want[coredns]}")
while read -r ref; do standins+=("$ref"); done < <(grep -ho '"docker.io/kindest/[^"]*"' \
  "$kind_mod"/pkg/build/nodeimage/const_cni.go "$kind_mod"/pkg/build/nodeimage/const_storage.go | tr -d '"')
for ref in "${standins[@]}"; do docker tag "${want[pause]}" "$ref"; done

# --- node image ---------------------------------------------------------------------
layout="$work/tarball/kubernetes"
mkdir -p "$layout/server/bin"
echo "$KUBE_VERSION" >"$layout/version"
cp "${bin[kubeadm]}" "${bin[kubelet]}" "${bin[kubectl]}" "$layout/server/bin/"
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  docker save "${want[$c]}" -o "$layout/server/bin/$c.tar"
done
# kube-proxy.tar carries every other image too, so that kind counts them as present.
docker save "${want[kube-proxy]}" "${want[etcd]}" "${want[pause]}" "${standins[@]}" -o "$work/others.tar"
python3 "$here/qualify-archive-tags.py" "$work/others.tar" "$layout/server/bin/kube-proxy.tar"
rm -f "$work/others.tar"
tar -C "$work/tarball" -czf "$work/kubernetes-server-linux-amd64.tar.gz" kubernetes
t=$SECONDS
kind build node-image --type file --base-image "$base" --image "$image" \
  "$work/kubernetes-server-linux-amd64.tar.gz" >&2
log "kind build node-image: $((SECONDS - t))s"
# The intermediate images are not needed any more (the node image holds their content).
docker rmi "$base-import" "${want[kube-apiserver]}" "${want[kube-controller-manager]}" \
  "${want[kube-scheduler]}" "${want[kube-proxy]}" "${want[etcd]}" "${standins[@]}" "${want[pause]}" "$base" >/dev/null 2>&1 || true
log "built $image in $((SECONDS - start))s"
echo "$image"
