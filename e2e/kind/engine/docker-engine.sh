#!/usr/bin/env bash
# A Docker engine for make image / make kind-e2e, only while they need one.
#
#   docker-engine.sh start   use the engine that answers `docker info`; if none does,
#                            start Debian's dockerd (as root) and remember that we did
#   docker-engine.sh stop    stop the engine only if `start` started it
#
# Our dockerd keeps its images in ${KONFLUX_TELEMETRY_CACHE:-~/.cache/konflux-telemetry}/docker,
# so the node image built once survives between runs. On hosts whose capability
# bounding set lacks CAP_SYS_RESOURCE, `docker run --privileged` (kind's nodes) fails:
# there the runtime wrapper runc-without-cap-sys-resource (beside this script) becomes
# dockerd's default runtime.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${KONFLUX_TELEMETRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/konflux-telemetry}"
state="$cache_root/docker-engine"
pidfile="$state/dockerd.pid"

log() { echo "docker-engine: $*" >&2; }
die() { log "error: $*"; exit 1; }

answers() { timeout 10 docker info >/dev/null 2>&1; }

# True when this process may not hold CAP_SYS_RESOURCE (bit 24 of CapBnd).
lacks_cap_sys_resource() {
  local bnd
  bnd="$(awk '/^CapBnd:/ {print $2}' /proc/self/status 2>/dev/null)"
  [[ -n $bnd ]] && (((0x$bnd >> 24 & 1) == 0))
}

start() {
  if answers; then
    log "using the running Docker engine ($(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "no Docker engine answers and starting one needs root; start dockerd (or Docker Desktop) and retry"
  local dockerd
  dockerd="$(command -v dockerd || true)"
  [[ -n $dockerd ]] || die "no Docker engine answers and dockerd is not installed (apt-get install docker.io; e2e/kind/install-deps.sh does it)"
  mkdir -p "$state" "$cache_root/docker"
  local runtime_args=()
  if lacks_cap_sys_resource; then
    # A copy outside the checkout: the engine must not depend on a work tree that may go.
    install -m 0755 "$here/runc-without-cap-sys-resource" "$state/runc-without-cap-sys-resource"
    runtime_args=(--add-runtime "capfix=$state/runc-without-cap-sys-resource" --default-runtime capfix)
    log "this host lacks CAP_SYS_RESOURCE: containers run through runc-without-cap-sys-resource"
  fi
  log "starting dockerd (data in $cache_root/docker, log in $state/dockerd.log)"
  setsid "$dockerd" --data-root "$cache_root/docker" --pidfile "$pidfile" \
    --exec-root "$state/exec" "${runtime_args[@]}" >"$state/dockerd.log" 2>&1 </dev/null &
  local i
  for i in $(seq 60); do
    answers && { touch "$state/started-by-us"; log "dockerd is up"; return 0; }
    sleep 1
  done
  tail -n 20 "$state/dockerd.log" >&2 || true
  die "dockerd did not answer within 60s (log: $state/dockerd.log)"
}

stop() {
  [[ -f $state/started-by-us ]] || return 0
  rm -f "$state/started-by-us"
  [[ -s $pidfile ]] || return 0
  local pid i
  pid="$(<"$pidfile")"
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || { log "dockerd stopped"; return 0; }
    sleep 1
  done
  log "dockerd did not stop within 30s; killing it"
  kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: docker-engine.sh start|stop" ;;
esac
