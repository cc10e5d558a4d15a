#!/usr/bin/env bash
# Make sure this machine has what e2e/tekton-results/results-up.sh needs: the
# PostgreSQL server (initdb, pg_ctl, postgres, psql) and, as root, the `postgres`
# system user it runs as; openssl, curl, flock/setpriv (util-linux). Installs missing
# Debian packages with apt-get (as root, or with sudo). Go (to build the Results API
# server) is checked by e2e/control-plane/install-deps.sh; >= 1.26.4 is needed here.
set -euo pipefail

log() { echo "tekton-results install-deps: $*" >&2; }

have_pg() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres && -x $d/psql ]] && return 0
  done
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 &&
    command -v postgres >/dev/null 2>&1 && command -v psql >/dev/null 2>&1
}

missing=()
# The Debian package `postgresql` pulls the current major version's server and client
# and creates the `postgres` system user. Its cluster is not used (results-up.sh runs
# its own); the package's service is not started in containers without systemd.
have_pg || missing+=(postgresql)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
{ command -v flock >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1; } || missing+=(util-linux)
[[ -e /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  sudo=(sudo)
fi
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null 2>&1; then
    log "need root (or sudo) to install: ${missing[*]}"
    exit 1
  fi
  log "installing ${missing[*]} with apt-get"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# As root, PostgreSQL must run as another user.
if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
  log "creating the system user 'postgres'"
  useradd --system --home-dir /var/lib/postgresql --no-create-home --shell /usr/sbin/nologin postgres
fi

have_pg || { log "PostgreSQL server binaries still not found"; exit 1; }
log "ok: PostgreSQL, openssl, curl, flock, setpriv"
