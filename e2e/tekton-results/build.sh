#!/usr/bin/env bash
# Build (once) the Tekton Results binaries from source and print their paths.
#
#   build.sh [api|watcher ...]   (default: api)
#
# The Go module beside this script pins a released github.com/tektoncd/results
# (go.mod `tool` directives + go.sum). Binaries go to a cache outside the
# repository keyed by version:
#   ${KONFLUX_TELEMETRY_CACHE:-~/.cache/konflux-telemetry}/bin/tekton-results-<version>/<name>
# A binary already in the cache is never rebuilt. Prints one line per binary:
#   <name> <absolute path>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${KONFLUX_TELEMETRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/konflux-telemetry}"

log_prefix=tekton-results/build.sh
# shellcheck source=../lib.sh
source "$here/../lib.sh"

# The pinned version is the one in go.mod: a single source of truth.
version="$(awk '$1 == "github.com/tektoncd/results" {print $2}' "$here/go.mod")"
[[ -n $version ]] || die "go.mod does not require github.com/tektoncd/results"
dir="$cache_root/bin/tekton-results-$version"

build_one() {
  local name="$1" bin pkg
  case "$name" in
    api|watcher) pkg="github.com/tektoncd/results/cmd/$name" ;;
    *) die "unknown binary '$name' (expected api or watcher)" ;;
  esac
  bin="$dir/$name"
  if [[ -x $bin ]]; then
    echo "$name $bin"
    return
  fi
  # One build at a time per cache (parallel test binaries, worktrees, CI): a second
  # caller waits here, then finds the binary built.
  mkdir -p "$cache_root"
  exec 9>"$cache_root/.build.lock"
  flock 9
  if [[ -x $bin ]]; then
    echo "$name $bin"
    return
  fi
  local go
  go="$(find_go)" || die "Go not found: install Go >= 1.26.4 (https://go.dev/dl) or put it on PATH (tried PATH, /usr/local/go/bin)"
  local avail_kb
  avail_kb="$(df -Pk "$HOME" | awk 'NR==2 {print $4}')"
  if [[ -n $avail_kb && $avail_kb -lt 2000000 ]]; then
    die "not enough disk: the first build needs about 2 GiB free under $HOME (module and build caches), only $((avail_kb / 1024)) MiB free"
  fi
  log "building tekton-results $name $version from source (first time, a few minutes; cached in $dir)..."
  local start=$SECONDS tmp
  mkdir -p "$dir"
  tmp="$(mktemp "$dir/.$name.XXXXXX")"
  # CGO off: static binary, no C toolchain. -mod=readonly: the committed go.sum
  # is the source of truth.
  if ! (cd "$here" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false ${GOFLAGS_EXTRA:-}" \
        "$go" build -trimpath -ldflags "-s -w" -o "$tmp" "$pkg") >&2; then
    rm -f "$tmp"
    die "go build of tekton-results $name $version failed (see above)"
  fi
  mv -f "$tmp" "$bin"
  log "built tekton-results $name $version in $((SECONDS - start))s"
  echo "$name $bin"
}

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(api)
for n in "${names[@]}"; do build_one "$n"; done
