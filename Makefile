# fieldsync: see README.md. "make help" lists the targets.
#
# make run and make test need no setup beyond Go, gcc (for -race) and
# Debian's postgresql-15: deploy/stack.sh builds FerretDB and MinIO into
# .cache/infra-bin on first use and starts them with PostgreSQL.

SHELL := /bin/bash
.DEFAULT_GOAL := help

GO         ?= go
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
PKGS       ?= ./...
TEST_FLAGS ?= -race -timeout 40m
STACK      := deploy/stack.sh

# Tests read the same FIELDSYNC_* variables as fieldsyncd; this makes the
# integration tests fail instead of skip when a server is missing.
REQUIRE    := env FIELDSYNC_REQUIRE_INTEGRATION=1

.PHONY: help run demo test bench soak faults budget build app servers infra lint fmt ci

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: build ## Start the servers and fieldsyncd on http://127.0.0.1:8080, data under data/ (Ctrl-C stops all)
	$(STACK) exec --profile run -- deploy/run-local.sh bin/fieldsyncd

demo: ## With make run up: seed the sample county (东河县) and print an enrollment code for fieldphone
	$(GO) run ./server/cmd/fieldsyncctl demo

test: app ## Start throwaway servers and run go test -race ./... against them
	$(STACK) exec --profile test -- $(REQUIRE) $(GO) test $(TEST_FLAGS) $(PKGS)

bench: ## Run the benchmarks against throwaway servers
	@if git ls-files -co --exclude-standard -- '*_test.go' | xargs -r grep -l '^func Benchmark' >/dev/null; then \
		$(STACK) exec --profile test -- $(REQUIRE) $(GO) test -run '^$$' -bench . -benchmem $(PKGS); \
	else \
		echo "no benchmarks yet"; \
	fi
	@# fieldsync against raw FerretDB and pouchdb-server on the same realistic records (BENCH_RECORDS=, BENCH_SCHOOLS=, BENCH_SCHOOL_MODES=)
	server/cmd/fieldbench/bench.sh
	@# mobile: 1,000 simulated phones against fieldsyncd on the test stack (PHONES=, CONCURRENCY= to change)
	mobile/cmd/fieldload/bench.sh
	@# hostile traffic against fieldsyncd: peak RSS per attack while a phone syncs
	mobile/cmd/fieldbudget/bench.sh
	$(MAKE) soak

SOAK ?= 5m
soak: ## Concurrent pushes to one record, seed after seed, for SOAK (default 5m); SOAK_SEED= replays from a seed
	set -o pipefail; $(STACK) exec --profile test -- $(REQUIRE) env FIELDSYNC_SOAK=$(SOAK) FIELDSYNC_SOAK_SEED=$(SOAK_SEED) \
		$(GO) test -count=1 -timeout 0 -run '^TestConcurrentPushesSoak$$' -v ./server/mongo/ | grep -E '^(=== RUN|--- FAIL|\s+--- FAIL|FAIL|ok|PASS)|soak:|concurrent.go'

faults: app ## The fault suite: kills, restarts, a full disk, against real servers; prints one table (deploy/faults.sh)
	deploy/faults.sh

budget: ## Attack fieldsyncd on throwaway servers (slow bodies, gzip bombs) and print its peak RSS per attack; BEFORE=rev also attacks that build
	mobile/cmd/fieldbudget/bench.sh

build: app ## Build bin/fieldsyncd
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/fieldsyncd ./server/cmd/fieldsyncd

# The web app's WebAssembly core is a build product (git-ignored), rebuilt
# when the Go it is made of changes; build, run and test make it first.
CORE     := webapp/static/core.wasm.gz
CORE_SRC  = $(shell git ls-files -co --exclude-standard -- syncproto forms webapp/core webapp/cmd/corewasm webapp/cmd/buildcore go.mod go.sum 2>/dev/null | grep -v '_test\.go$$')

$(CORE): $(CORE_SRC)
	$(GO) run ./webapp/cmd/buildcore

app: $(CORE) ## Build the web app's WebAssembly core (webapp/static/core.wasm.gz) if syncproto, forms or webapp/core changed

servers: ## Start the servers of make run in the foreground until Ctrl-C, and print their variables
	$(STACK) servers --profile run

infra: ## Build the FerretDB and MinIO binaries now (make run and make test do it when needed)
	$(STACK) build

lint: ## The checks of .ci/run without the tests: gofmt, go vet, staticcheck, import rules
	.ci/run gofmt vet staticcheck imports

fmt: ## gofmt every Go file of the repository
	git ls-files -co --exclude-standard -z -- '*.go' | xargs -0 -r gofmt -w

ci: ## Everything CI runs (.ci/run)
	.ci/run
