#!/usr/bin/env bash
# Make sure this machine has what e2e/control-plane/cluster-up.sh needs:
# Go (to build etcd, kube-apiserver and kubectl from source), openssl, curl,
# flock (util-linux) and base64 (coreutils). Installs missing Debian packages
# with apt-get (as root, or with sudo); Go itself must already be installed.
set -euo pipefail

log() { echo "install-deps: $*" >&2; }

missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v flock >/dev/null 2>&1 || missing+=(util-linux)
command -v base64 >/dev/null 2>&1 || missing+=(coreutils)
command -v awk >/dev/null 2>&1 || missing+=(mawk)
# ca-certificates: Go fetches modules over HTTPS.
[[ -e /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)

if ((${#missing[@]})); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { log "need root (or sudo) to install: ${missing[*]}"; exit 1; }
    sudo=(sudo)
  fi
  log "installing ${missing[*]} with apt-get"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

go=""
if command -v go >/dev/null 2>&1; then
  go="$(command -v go)"
elif [[ -x /usr/local/go/bin/go ]]; then
  go=/usr/local/go/bin/go
fi
if [[ -z $go ]]; then
  log "Go not found (PATH, /usr/local/go/bin): install Go >= 1.24 to build the control plane"
  exit 1
fi
gov="$("$go" env GOVERSION 2>/dev/null || true)"
case "$gov" in
  go1.2[4-9]* | go1.[3-9][0-9]* | go[2-9]*) ;;
  *)
    log "$go is $gov; Go >= 1.24 is needed (an older go cannot fetch a newer toolchain by itself)"
    exit 1
    ;;
esac
log "ok: $gov ($go), openssl, curl, flock"
