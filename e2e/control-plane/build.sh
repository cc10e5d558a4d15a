#!/usr/bin/env bash
# Build (once) the control-plane binaries from source and print their paths.
#
#   build.sh [NAME ...]   NAME: etcd, or a Kubernetes command (kube-apiserver,
#                         kube-controller-manager, kube-scheduler, kube-proxy,
#                         kubeadm, kubelet, kubectl); default: kube-apiserver etcd kubectl
#
# etcd comes from the Go wrapper module etcd/ beside this script; every
# Kubernetes command from the one module e2e/kubernetes (shared with the kind
# node image, e2e/kind/node-image), all missing ones in a single `go build`.
# Versions are pinned in versions.env and the modules' go.mod/go.sum. Binaries
# are cached outside the repository, keyed by version:
#   ${KONFLUX_TELEMETRY_CACHE:-~/.cache/konflux-telemetry}/bin/etcd-<version>/etcd
#   ${KONFLUX_TELEMETRY_CACHE:-~/.cache/konflux-telemetry}/bin/kubernetes-<version>/<command>
# A binary already in the cache is never rebuilt. Prints one line per binary:
#   <name> <absolute path>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${KONFLUX_TELEMETRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/konflux-telemetry}"

log_prefix=build.sh
# shellcheck source=../lib.sh
source "$here/../lib.sh"

KUBE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubeadm kubelet kubectl)

is_kube_command() {
  local c
  for c in "${KUBE_COMMANDS[@]}"; do [[ $1 == "$c" ]] && return 0; done
  return 1
}

cached_path() {
  if is_kube_command "$1"; then
    echo "$cache_root/bin/kubernetes-$KUBE_VERSION/$1"
  elif [[ $1 == etcd ]]; then
    echo "$cache_root/bin/etcd-$ETCD_VERSION/etcd"
  else
    die "unknown binary '$1' (expected etcd or one of: ${KUBE_COMMANDS[*]})"
  fi
}

# -X flags so that /version and `kubectl version` report the real release.
kube_ldflags() {
  local v="$1" major minor
  major="${v#v}"; major="${major%%.*}"
  minor="${v#v*.}"; minor="${minor%%.*}"
  local out="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    out+=" -X '$pkg.gitVersion=$v' -X '$pkg.gitMajor=$major' -X '$pkg.gitMinor=$minor'"
    out+=" -X '$pkg.gitTreeState=clean' -X '$pkg.buildDate=1970-01-01T00:00:00Z'"
  done
  echo "$out"
}

check_disk() {
  local avail_kb
  avail_kb="$(df -Pk "$HOME" | awk 'NR==2 {print $4}')"
  if [[ -n $avail_kb && $avail_kb -lt 4000000 ]]; then
    die "not enough disk: the first build needs about 4 GiB free under $HOME (Go module and build caches), only $((avail_kb / 1024)) MiB free"
  fi
}

# go_build DIR OUT LDFLAGS PACKAGE...: CGO off (static binaries, no C toolchain);
# -mod=readonly: the go.sum committed in the repo is the source of truth.
go_build() {
  local dir="$1" out="$2" ldflags="$3"
  shift 3
  local go
  go="$(find_go)" || die "Go not found: install Go >= 1.24 (https://go.dev/dl) or put it on PATH (tried PATH, /usr/local/go/bin)"
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false ${GOFLAGS_EXTRA:-}" \
    "$go" build -trimpath -ldflags "$ldflags" -o "$out" "$@") >&2
}

# The Kubernetes commands come from one module (e2e/kubernetes), built in one
# `go build` so that the packages they share are compiled once.
build_kube() {
  local dir="$cache_root/bin/kubernetes-$KUBE_VERSION" src="$here/../kubernetes" name pkgs=() tmp
  grep -q "k8s.io/kubernetes $KUBE_VERSION\$" "$src/go.mod" \
    || die "$src/go.mod does not pin k8s.io/kubernetes $KUBE_VERSION (versions.env and go.mod disagree)"
  for name in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$name"); done
  check_disk
  log "building $* $KUBE_VERSION from source (first time, several minutes; cached in $dir)..."
  local start=$SECONDS
  mkdir -p "$dir"
  tmp="$(mktemp -d "$dir/.build.XXXXXX")"
  if ! go_build "$src" "$tmp/" "-s -w$(kube_ldflags "$KUBE_VERSION")" "${pkgs[@]}"; then
    rm -rf "$tmp"
    die "go build of $* $KUBE_VERSION failed (see above)"
  fi
  for name in "$@"; do mv -f "$tmp/$name" "$dir/$name"; done
  rm -rf "$tmp"
  log "built $* $KUBE_VERSION in $((SECONDS - start))s"
}

build_etcd() {
  local dir="$cache_root/bin/etcd-$ETCD_VERSION" src="$here/etcd" tmp
  grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION\$" "$src/go.mod" \
    || die "$src/go.mod does not pin etcd $ETCD_VERSION (versions.env and go.mod disagree)"
  check_disk
  log "building etcd $ETCD_VERSION from source (first time, a few minutes; cached in $dir)..."
  local start=$SECONDS
  mkdir -p "$dir"
  tmp="$(mktemp "$dir/.etcd.XXXXXX")"
  if ! go_build "$src" "$tmp" "-s -w" .; then
    rm -f "$tmp"
    die "go build of etcd $ETCD_VERSION failed (see above)"
  fi
  mv -f "$tmp" "$dir/etcd"
  log "built etcd $ETCD_VERSION in $((SECONDS - start))s"
}

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(kube-apiserver etcd kubectl)
all_cached() {
  local n
  for n in "${names[@]}"; do [[ -x $(cached_path "$n") ]] || return 1; done
}
if ! all_cached; then
  # One build at a time per cache (parallel test binaries, worktrees, CI): a second
  # caller waits here, then finds the binaries built.
  mkdir -p "$cache_root"
  exec 9>"$cache_root/.build.lock"
  flock 9
  missing_kube=()
  for n in "${names[@]}"; do
    [[ -x $(cached_path "$n") ]] && continue
    if [[ $n == etcd ]]; then build_etcd; else missing_kube+=("$n"); fi
  done
  ((${#missing_kube[@]} == 0)) || build_kube "${missing_kube[@]}"
fi
for n in "${names[@]}"; do echo "$n $(cached_path "$n")"; done
