#!/usr/bin/env bash
# Stop the Tekton Results API server and its PostgreSQL started by results-up.sh,
# and remove their state (.cluster/results/). Safe to run when nothing is running.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$cluster_dir"
exec 8>"$lock_file"
flock -w 900 8 || die "timed out waiting for another results-up/results-down (lock $lock_file)"
if [[ -d $state_dir ]]; then
  stop_all
  rm -rf "$state_dir"
fi
reap_orphans
log "stopped; removed $state_dir"
