# Cloakroom: `make test` installs what the tests need on a fresh Debian
# machine (Chromium, redis-server, haproxy, Node.js for the browser driver) and runs
# everything, integration tests included.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

GO ?= go
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
BROWSER_DIR := e2e/browser
# npm ci writes this file last; it is older than the lock when node_modules is stale.
NODE_STAMP := $(BROWSER_DIR)/node_modules/.package-lock.json
# The FAPI 2.0 test provider (oidc-provider from npm), started by Go tests.
OP_DIR := e2e/oidc-provider
OP_STAMP := $(OP_DIR)/node_modules/.package-lock.json

# Integration tests (real Chromium, real redis-server) fail instead of skip.
export CLOAKROOM_REQUIRE_INTEGRATION := 1
export CHROMIUM ?= /usr/bin/chromium

.PHONY: test deps load deps-system fmt-check vet browser-check bench demo providers fleet

test: deps fmt-check vet browser-check providers
	@echo "benchmarks, once each so they never rot"
	@CLOAKROOM_FOOTPRINT_N=1000 $(GO) test -run '^$$' -bench . -benchtime=1x ./... > .bench-smoke.log 2>&1 || { cat .bench-smoke.log; exit 1; }
	$(GO) test -race -count=1 -timeout 30m ./...
	@echo "deploy kit: the Helm chart rendered and checked against the Kubernetes API types, the Dockerfile and the systemd unit"
	cd tools/deploycheck && $(GO) test -count=1 -timeout 30m ./...
	@echo "fleet: three instances behind HAProxy on Redis with Sentinel, through restarts, kill -9 and failovers"
	$(MAKE) --no-print-directory fleet

deps: deps-system $(NODE_STAMP) $(OP_STAMP)

deps-system:
	@pkgs=""; \
	[ -x /usr/bin/chromium ] || pkgs="$$pkgs chromium"; \
	command -v redis-server >/dev/null 2>&1 || pkgs="$$pkgs redis-server"; \
	command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || pkgs="$$pkgs haproxy"; \
	command -v node >/dev/null 2>&1 || pkgs="$$pkgs nodejs"; \
	command -v npm >/dev/null 2>&1 || pkgs="$$pkgs npm"; \
	command -v gcc >/dev/null 2>&1 || pkgs="$$pkgs gcc libc6-dev"; \
	command -v systemd-analyze >/dev/null 2>&1 || pkgs="$$pkgs systemd"; \
	if [ -n "$$pkgs" ]; then \
		echo "deps: installing$$pkgs"; \
		$(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $$pkgs; \
	fi; \
	major=$$(node -p 'process.versions.node.split(".")[0]'); \
	if [ "$$major" -lt 20 ]; then echo "deps: warning: node $$(node --version) is older than the browser driver's minimum, 20"; fi

$(NODE_STAMP): $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json | deps-system
	npm ci --prefix $(BROWSER_DIR) --no-audit --no-fund
	@touch $@

$(OP_STAMP): $(OP_DIR)/package.json $(OP_DIR)/package-lock.json | deps-system
	npm ci --prefix $(OP_DIR) --no-audit --no-fund
	@touch $@

# The programs the interop tests run (Ory Hydra, Dex, Pebble) are built once
# per machine and version into ~/.cache/cloakroom-tools (internal/oidctest/gotool);
# a cold build takes minutes, so it happens here and not inside a test's time limit.
providers:
	$(GO) test -count=1 -timeout 45m -run '^TestBuildAll$$' ./internal/oidctest/gotool/

fmt-check:
	@out=$$(find . -name '*.go' -not -path './$(BROWSER_DIR)/node_modules/*' -not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l); \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

browser-check: $(NODE_STAMP) $(OP_STAMP)
	for f in $(BROWSER_DIR)/*.mjs $(OP_DIR)/*.mjs; do node --check "$$f"; done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

demo:
	$(GO) run ./cmd/cloakroom demo

load:
	bash bench/load.sh

# The fleet test (scripts/fleet, e2e/fleet): about a minute.
fleet: deps-system
	bash scripts/fleet
