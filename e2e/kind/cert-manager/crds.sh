#!/usr/bin/env bash
# Print the folder of cert-manager's CRDs (deploy/crds: plain YAML, no Helm templating) of
# the version binaries/go.mod pins, from the Go module cache (downloaded there once). Used
# by install.sh (make kind-e2e) and by the local API server's tests that render deploy/'s
# Issuer and Certificate (tests/deploy.rs, tests/manifests.rs).
#
#   cert-manager/crds.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log_prefix="cert-manager/crds.sh"
# shellcheck source=../../lib.sh
source "$here/../../lib.sh"

go="$(find_go)" || die "Go is needed to fetch cert-manager's CRDs from its module (apt-get install golang-go)"
command -v jq >/dev/null 2>&1 || die "jq is not installed"
version="$(awk '$1 == "github.com/cert-manager/cert-manager" {print $2; exit}' "$here/binaries/go.mod")"
[[ -n $version ]] || die "$here/binaries/go.mod does not pin github.com/cert-manager/cert-manager"
# `go mod download`, not `go list -m`: on a new machine the module is not in the cache yet.
dir="$(cd "$here/binaries" && "$go" mod download -json "github.com/cert-manager/cert-manager@$version" | jq -r .Dir)"
crds="$dir/deploy/crds"
[[ -d $crds ]] || die "cert-manager $version's deploy/crds not found in the Go module cache ($dir)"
if grep -l '{{' "$crds"/*.yaml >/dev/null 2>&1; then die "$crds holds Helm templating"; fi
echo "$crds"
