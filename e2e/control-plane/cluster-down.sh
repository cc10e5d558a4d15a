#!/usr/bin/env bash
# Stop the local control plane started by cluster-up.sh (TERM, then KILL after
# a deadline) and remove its state in .cluster/. Idempotent.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ! -d $state_dir ]]; then
  log "not running (no $state_dir)"
  exit 0
fi
exec 9>"$state_dir/lock"
flock -w 3600 9 || die "timed out waiting for another cluster-up/cluster-down (lock $state_dir/lock)"

stop_all

# Processes of this checkout whose pid file was lost (e.g. .cluster/ removed by
# hand): find them by the state paths on their command line, which only they
# use, and stop them by pid.
for pid in $(grep -lsF -e "--data-dir=$state_dir/etcd-data" -e "--cert-dir=$state_dir/pki" /proc/[0-9]*/cmdline 2>/dev/null |
  sed -n 's|^/proc/\([0-9]*\)/cmdline$|\1|p'); do
  [[ $pid == "$$" ]] && continue
  name="$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | head -n1)" || continue
  name="${name##*/}"
  case "$name" in etcd | kube-apiserver) ;; *) continue ;; esac
  log "stopping orphaned $name (pid $pid)"
  echo "$pid" >"$state_dir/orphan.pid"
  stop_pidfile "$state_dir/orphan.pid" "$name"
done

# Tekton Results (make results-up) keeps its state under .cluster/results: stop it first.
if [[ -d $state_dir/results && -f $repo_root/e2e/tekton-results/results-down.sh ]]; then
  bash "$repo_root/e2e/tekton-results/results-down.sh" || log "results-down failed; removing its state anyway"
fi
rm -rf "$state_dir"
log "stopped and removed $state_dir"
