#!/usr/bin/env bash
# What make kind-e2e needs beyond e2e/control-plane/install-deps.sh, on a Debian machine:
# Debian's docker.io (an engine for kind's node; started only when needed, by
# engine/docker-engine.sh), debootstrap (the locally built node image's base), jq,
# musl-tools and the Rust musl target (the static binary of the scratch image), and kind
# itself, built from its Go module into the cache. Prints the path of kind.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache_root="${KONFLUX_TELEMETRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/konflux-telemetry}"

log() { echo "kind install-deps: $*" >&2; }
die() { log "error: $*"; exit 1; }

missing=()
if ! command -v dockerd >/dev/null 2>&1 && ! timeout 10 docker info >/dev/null 2>&1; then missing+=(docker.io); fi
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if ((${#missing[@]})); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: ${missing[*]}"
    sudo=(sudo)
  fi
  log "installing ${missing[*]} with apt-get"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  log "adding the Rust target x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl >&2
fi

kind_dir="$cache_root/bin/kind-$KIND_VERSION"
if [[ ! -x $kind_dir/kind ]]; then
  command -v go >/dev/null 2>&1 || die "Go is needed to build kind $KIND_VERSION"
  log "building kind $KIND_VERSION from its Go module (once; cached in $kind_dir)"
  mkdir -p "$kind_dir"
  CGO_ENABLED=0 GOBIN="$kind_dir" GOFLAGS=-buildvcs=false go install -trimpath -ldflags '-s -w' \
    "sigs.k8s.io/kind@$KIND_VERSION" >&2
fi
echo "$kind_dir/kind"
