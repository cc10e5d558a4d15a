# konflux-telemetry: every entry point a person or CI uses.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
BIN := target/release/konflux-telemetry
SHARED ?= ../shared

.PHONY: help build release test test-unit conformance lint fmt bench cluster-up cluster-down results-up results-down demo image kind-e2e test-faults certs

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## debug build
	$(CARGO) build

release: ## optimised build of the binary
	$(CARGO) build --release --bin konflux-telemetry

test: release results-up ## every test: unit, conformance, integration on the local API server
	$(CARGO) test --release --all-targets
	@if [ -x $(SHARED)/conformance/check-conformance.sh ]; then \
	  $(SHARED)/conformance/check-conformance.sh '$(BIN) transform'; \
	else echo "conformance: $(SHARED) not beside the checkout, skipped"; fi

test-unit: ## tests that need no API server
	$(CARGO) test --release --lib --bins

conformance: release ## the segment-bridge 2.0 vectors
	$(SHARED)/conformance/check-conformance.sh '$(BIN) transform'

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

bench: ## benchmarks (figures printed, see docs/performance.md); the daemon bench needs the local API server
	$(CARGO) bench --bench transform
	$(CARGO) bench --bench admission
	$(MAKE) cluster-up
	$(CARGO) bench --bench daemon

cluster-up: ## build (cached) and start etcd + kube-apiserver on loopback, install the CRDs
	@bash e2e/control-plane/cluster-up.sh

cluster-down: ## stop the local API server and remove its state
	@bash e2e/control-plane/cluster-down.sh

results-up: cluster-up ## build (cached) and start the Tekton Results API server and its PostgreSQL
	@bash e2e/tekton-results/results-up.sh

results-down: ## stop the Tekton Results API server and PostgreSQL, remove their state
	@bash e2e/tekton-results/results-down.sh

demo: ## local API server + sink + daemon, plays a small Konflux and prints events; Ctrl-C stops it all
	@bash e2e/demo/demo.sh

IMAGE ?= konflux-telemetry:dev

image: ## container image $(IMAGE): the Containerfile where its bases can be pulled, else a host-built static binary on scratch (IMAGE_BUILD=containerfile|scratch)
	@IMAGE=$(IMAGE) bash image/build.sh

kind-e2e: ## the Pod from deploy/overlays/kind on a kind cluster (node image pulled or built here, cached), e2e suite; KEEP_CLUSTER=1 keeps it
	@IMAGE=$(IMAGE) bash e2e/kind/kind-e2e.sh

CERTS_DIR ?= webhook-certs/out
certs: ## webhook CA, serving certificate and caBundle in webhook-certs/out (CERTS_DIR=..., SANS="DNS:x IP:y")
	@bash webhook-certs/make-certs.sh $(CERTS_DIR) $(SANS)

FUZZ_SECONDS ?= 30

test-faults: release results-up ## the fault suite (tests/faults.rs): API server and Results restarts, sink faults, SIGKILL, hostile input; serially
	KONFLUX_TELEMETRY_FUZZ_SECONDS=$(FUZZ_SECONDS) \
	  $(CARGO) test --release --test faults -- --include-ignored --test-threads=1 --nocapture
