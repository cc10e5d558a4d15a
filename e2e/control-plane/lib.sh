# Shared by cluster-up.sh and cluster-down.sh. Source it; do not run it.
# shellcheck shell=bash

cp_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$cp_dir/../.." && pwd)"
state_dir="$repo_root/.cluster"

log_prefix=cluster
# shellcheck source=../lib.sh
source "$cp_dir/../lib.sh"

stop_all() {
  # The API server first, so it does not log a storm of etcd errors.
  stop_pidfile "$state_dir/kube-apiserver.pid" kube-apiserver
  stop_pidfile "$state_dir/etcd.pid" etcd
}

# Read a KEY=value line from .cluster/env (values are written unquoted).
state_get() {
  local key="$1"
  [[ -f $state_dir/env ]] || return 1
  sed -n "s/^export $key=//p" "$state_dir/env" | head -n1
}
