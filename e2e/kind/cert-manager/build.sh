#!/usr/bin/env bash
# Build (once) a cert-manager controller and cainjector for make kind-e2e, statically, and
# print their paths: one line per binary, `<name> <absolute path>`.
#
#   cert-manager/build.sh
#
# The two commands are our own short mains in binaries/ (binaries/README.md), which run
# the controllers and injectors of the published github.com/cert-manager/cert-manager
# module that binaries/go.mod pins (cert-manager's own cmd/ modules are not served by any
# proxy). Both in one `go build` (the packages they share compiled once). Cached, keyed by
# the version and the Go files, go.mod and go.sum of binaries/:
#   ${KONFLUX_TELEMETRY_CACHE:-~/.cache/konflux-telemetry}/bin/cert-manager-<version>-<key>/
# A binary already in the cache is never rebuilt. One build at a time per cache (the lock
# the other Go builds of e2e/control-plane/build.sh take).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/binaries"
cache_root="${KONFLUX_TELEMETRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/konflux-telemetry}"
names=(controller cainjector)

log() { echo "cert-manager/build.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

version="$(awk '$1 == "github.com/cert-manager/cert-manager" {print $2; exit}' "$src/go.mod")"
[[ -n $version ]] || die "$src/go.mod does not pin github.com/cert-manager/cert-manager"
key="$(cd "$src" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -print0 \
  | sort -z | xargs -0 cat | sha256sum | cut -c1-12)"
dir="$cache_root/bin/cert-manager-$version-$key"

all_cached() {
  local n
  for n in "${names[@]}"; do [[ -x $dir/$n ]] || return 1; done
}

if ! all_cached; then
  mkdir -p "$cache_root"
  exec 9>"$cache_root/.build.lock"
  flock 9
  if ! all_cached; then
    go="$(command -v go || true)"
    [[ -n $go ]] || for g in /usr/local/go/bin/go /usr/lib/go/bin/go; do [[ -x $g ]] && go=$g && break; done
    [[ -n $go ]] || die "Go not found: install Go >= 1.25 or put it on PATH"
    log "building cert-manager $version controller and cainjector (first time, several minutes; cached in $dir)..."
    start=$SECONDS
    mkdir -p "$dir"
    tmp="$(mktemp -d "$dir/.build.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    ldflags="-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$version"
    ldflags+=" -X github.com/cert-manager/cert-manager/pkg/util.AppGitState=clean"
    pkgs=()
    for n in "${names[@]}"; do pkgs+=("./$n"); done
    # -mod=readonly: binaries/go.sum is the source of truth. -o DIR/ names each binary
    # after its package directory.
    (cd "$src" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false ${GOFLAGS_EXTRA:-}" \
      "$go" build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}") >&2 \
      || die "go build of cert-manager $version failed (see above)"
    for n in "${names[@]}"; do mv -f "$tmp/$n" "$dir/$n"; done
    log "built cert-manager $version controller and cainjector in $((SECONDS - start))s"
  fi
fi
for n in "${names[@]}"; do echo "$n $dir/$n"; done
