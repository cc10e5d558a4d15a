#!/usr/bin/env bash
# Stop the Tekton Results API server and its PostgreSQL started by results-up.sh,
# and remove their state (.cluster/results/). Safe to run when nothing is running.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -d $state_dir ]] || { log "not running (no $state_dir)"; exit 0; }
exec 8>"$lock_file"
flock -w 900 8 || die "timed out waiting for another results-up/results-down (lock $lock_file)"
stop_all
rm -rf "$state_dir"
log "stopped; removed $state_dir"
