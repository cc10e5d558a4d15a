#!/usr/bin/env bash
# Build (once) the control-plane binaries from source and print their paths.
#
#   build.sh [kube-apiserver|etcd|kubectl ...]   (default: all three)
#
# Each binary is built from the Go wrapper module beside this script, which
# pins a released version in its go.mod/go.sum, into a cache outside the
# repository keyed by version:
#   ${KONFLUX_TELEMETRY_CACHE:-~/.cache/konflux-telemetry}/bin/<name>-<version>/<name>
# A binary already in the cache is never rebuilt. Prints one line per binary:
#   <name> <absolute path>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${KONFLUX_TELEMETRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/konflux-telemetry}"

die() { echo "build.sh: error: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  for g in /usr/local/go/bin/go /usr/lib/go/bin/go "$HOME/go/bin/go" "$HOME/sdk/go/bin/go"; do
    if [[ -x $g ]]; then echo "$g"; return; fi
  done
  return 1
}

version_of() {
  case "$1" in
    kube-apiserver|kubectl) echo "$KUBE_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    *) die "unknown binary '$1' (expected kube-apiserver, etcd or kubectl)" ;;
  esac
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

build_one() {
  local name="$1" version dir bin src
  version="$(version_of "$name")"
  dir="$cache_root/bin/$name-$version"
  bin="$dir/$name"
  src="$here/$name"
  if [[ -x $bin ]]; then
    echo "$name $bin"
    return
  fi
  [[ -f $src/go.mod ]] || die "wrapper module $src/go.mod is missing"
  # The wrapper's go.mod must pin the same version as versions.env.
  case "$name" in
    kube-apiserver) grep -q "k8s.io/kubernetes $version\$" "$src/go.mod" ;;
    kubectl) grep -q "k8s.io/kubectl v0${version#v1}\$" "$src/go.mod" ;;
    etcd) grep -q "go.etcd.io/etcd/server/v3 $version\$" "$src/go.mod" ;;
  esac || die "$src/go.mod does not pin $name $version (versions.env and go.mod disagree)"

  local go
  go="$(find_go)" || die "Go not found: install Go >= 1.24 (https://go.dev/dl) or put it on PATH (tried PATH, /usr/local/go/bin)"
  local avail_kb
  avail_kb="$(df -Pk "$HOME" | awk 'NR==2 {print $4}')"
  if [[ -n $avail_kb && $avail_kb -lt 4000000 ]]; then
    die "not enough disk: the first build needs about 4 GiB free under $HOME (Go module and build caches), only $((avail_kb / 1024)) MiB free"
  fi

  local ldflags="-s -w"
  if [[ $name != etcd ]]; then ldflags+="$(kube_ldflags "$version")"; fi

  log "building $name $version from source (first time, several minutes; cached in $dir)..."
  local start=$SECONDS tmp
  mkdir -p "$dir"
  tmp="$(mktemp "$dir/.$name.XXXXXX")"
  # CGO off: static binaries, no C toolchain needed. -mod=readonly: go.sum
  # committed in the repo is the source of truth.
  if ! (cd "$src" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false ${GOFLAGS_EXTRA:-}" \
        "$go" build -trimpath -ldflags "$ldflags" -o "$tmp" .) >&2; then
    rm -f "$tmp"
    die "go build of $name $version failed (see above)"
  fi
  mv -f "$tmp" "$bin"
  log "built $name $version in $((SECONDS - start))s"
  echo "$name $bin"
}

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(kube-apiserver etcd kubectl)
for n in "${names[@]}"; do build_one "$n"; done
