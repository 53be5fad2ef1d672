# xserver developer tasks. `make help` lists them.

SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO        ?= go
GOPATH    := $(shell $(GO) env GOPATH)
GOMODCACHE := $(shell $(GO) env GOMODCACHE)
GOGO_VERSION := v1.3.2
GOGOFASTER := $(GOPATH)/bin/protoc-gen-gogofaster
FUZZTIME  ?= 20s
DEMO_ARGS ?=

.DEFAULT_GOAL := build

.PHONY: help build cross run test test-go test-js web-sdk e2e bench bench-micro bench-procs bench-groups bench-mem bench-failover bench-control proto fuzz vet clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

build: ## build every command and example into bin/ (mgrserver, gateway, login, echo, demo)
	$(GO) build -o bin/ ./cmd/... ./examples/...

run: build ## run the demo cluster until Ctrl-C (DEMO_ARGS="-lobbies 3 -bots 0", DEMO_ARGS=-h lists them; XSERVER_SECRET to choose the secret)
	./bin/demo $(DEMO_ARGS)

test: test-go test-js ## all tests: Go with the race detector, then the JS SDK's (needs redis-server, node, chromium)

test-go: ## the Go tests with the race detector (needs redis-server on PATH), then the Kubernetes manifests' check (deploy/k8s)
	$(GO) test -race -count=1 -timeout 20m ./...
	cd deploy/k8s && $(GO) test -count=1 ./...

test-js: build ## the JS SDK (clients/js) against a real cluster and in headless Chromium (needs node >= 20, `npm ci` in clients/js first)
	@test -d clients/js/node_modules/typescript || { echo "clients/js: run 'npm ci' there first (installs the dev dependencies: typescript)" >&2; exit 1; }
	cd clients/js && npm test

web-sdk: ## rebuild the JS SDK and copy its browser modules into the login example's page (examples/login/web/sdk)
	cd clients/js && npm run build
	rm -f examples/login/web/sdk/*.js
	for f in clients/js/dist/*.js; do case "$$f" in */node.js) ;; *) cp "$$f" examples/login/web/sdk/ ;; esac; done

e2e: ## browser test: two headless Chromium players chat through a whole cluster (needs redis-server, chromium; screenshots in E2E_ARTIFACTS or a temp dir)
	$(GO) test -tags e2e -count=1 -timeout 10m -v ./e2e/

bench: bench-micro bench-procs bench-mem ## the in-process micro-benchmarks, then the real-process relay and resume benchmark, then gateway memory per idle session

bench-micro: ## in-process: gateway allocations per frame, Redis commands per push, node calls vs one-way messages, relay vs one-hop echo round trips (last line: ratio K=1000)
	$(GO) test -run '^$$' -bench 'GatewayFrame' -benchmem ./gateway/
	$(GO) test -run '^$$' -bench '^BenchmarkCall$$' -benchtime 20000x ./gateway/
	$(GO) test -run '^$$' -bench 'RedisPerPush' -benchtime 1x ./gateway/
	$(GO) test -run '^$$' -bench 'RoundTrip' -benchtime 3s -timeout 20m ./gateway/ | $(GO) run ./internal/benchratio

XBENCH_ARGS ?= -k 1,100,1000 -reps 3 -resume 200
bench-procs: build ## real processes (redis-server, mgrserver, gateway, echo, login from bin/) under an external load, against a one-hop raw echo in the same run (XBENCH_ARGS to change K, -reps, -d)
	$(GO) run ./internal/xbench -bin bin $(XBENCH_ARGS)

bench-groups: ## one node broadcasting to a group of 10 000 members on 2 gateways (broadcasts/s, delivery p99), against broadcast-to-all and one send per member
	$(GO) test -run '^$$' -bench 'GroupBroadcast' -benchtime 50x -timeout 25m ./gateway/

BENCH_SESSIONS ?= 10000
bench-mem: build ## gateway process RSS per idle logged-in session (BENCH_SESSIONS real v2 logins over TCP, then WebSocket) against a bare process holding as many sockets, and Redis commands per login and per idle session
	$(GO) run ./internal/sessload -bin bin -n $(BENCH_SESSIONS)
	$(GO) run ./internal/sessload -bin bin -n $(BENCH_SESSIONS) -ws

bench-failover: ## the mgrserver failover / hand-over / convergence benchmarks
	$(GO) test -run '^$$' -bench 'Failover|Handover|Silent|Converge' -benchtime 3x -timeout 20m ./mgrserver/

bench-control: ## cold start of N = 1000, 3000, 5000 simulated nodes on one mgrserver process (needs redis-server; CONTROL_ARGS="-n 1000,8000" to change)
	$(GO) build -o bin/ ./cmd/mgrserver
	$(GO) run ./internal/ctlbench -bin bin $(CONTROL_ARGS)

proto: ## regenerate proto/*.pb.go (needs protoc; installs protoc-gen-gogofaster)
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
	@test -x $(GOGOFASTER) || GOBIN=$(GOPATH)/bin $(GO) install github.com/gogo/protobuf/protoc-gen-gogofaster@$(GOGO_VERSION)
	$(GO) mod download github.com/gogo/protobuf
	protoc -I proto -I $(GOMODCACHE)/github.com/gogo/protobuf@$(GOGO_VERSION) \
		--plugin=protoc-gen-gogofaster=$(GOGOFASTER) \
		--gogofaster_out=paths=source_relative:proto proto/*.proto

fuzz: ## run every Fuzz target for FUZZTIME (default 20s) each
	targets="$$($(GO) test -list '^Fuzz' ./... \
		| awk '/^Fuzz/ { f[n++] = $$1; next } /^ok/ { for (i = 0; i < n; i++) print $$2, f[i]; n = 0 }')"; \
	test -n "$$targets" || { echo "no fuzz targets found" >&2; exit 1; }; \
	while read -r pkg fn; do \
		echo "== $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) "$$pkg"; \
	done <<< "$$targets"

cross: ## the binaries and the library build for Windows and macOS too (game teams develop there; the test and benchmark tools are Linux-only)
	GOOS=windows $(GO) build -o /dev/null ./cmd/... ./examples/... ./client/... ./node/... ./gateway/... ./nodetest/...
	GOOS=darwin $(GO) build -o /dev/null ./cmd/... ./examples/... ./client/... ./node/... ./gateway/... ./nodetest/...

vet: ## go vet
	$(GO) vet ./...
	cd deploy/k8s && $(GO) vet ./...

clean: ## remove build output
	rm -rf bin/
