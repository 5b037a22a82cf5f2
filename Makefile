# Sluice. `make help` lists the targets.
GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
STATICCHECK_VERSION := 2026.2.2
FUZZTIME    ?= 10s
BENCHTIME   ?= 2s
DATA        ?= ./data

CHAOS_FLAGS ?=
CHAOS_SHORT_DURATION ?= 150s
# The harness's default mix plus disk faults: the brokers then run on the
# fault filesystem (--debug-fault-fs), so every kill also drops unsynced writes.
CHAOS_SHORT_FAULTS ?= kill,kill-leader,pause,pause-leader,partition-leader,partition-random,bridge,one-way,delay,reset,disk-stall,disk-fail

.PHONY: help build run cluster cluster-stop test test-deps verify bench fuzz chaos chaos-short chaos-power tools clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

build: ## build sluiced, sluicectl and sluice-bench into bin/
	$(GO) build -o bin/ ./cmd/...

run: build ## run the broker on an embedded single-node default (data in ./data, Kafka on 127.0.0.1:9092)
	./bin/sluiced --data-dir $(DATA)

cluster: build ## start a local 3-broker cluster in the background (Kafka on 127.0.0.1:9092-9094; PIDs in ./data/cluster/nodeN.pid)
	SKIP_BUILD=1 ./scripts/cluster.sh start

cluster-stop: ## stop the local cluster started by make cluster
	./scripts/cluster.sh stop

test: test-deps ## run every test (race detector on) and the fuzz seed corpora
	$(GO) test -race -count=1 -timeout 30m ./...

test-deps: ## install what tests need beyond Go (kcat), when missing
	./scripts/test-deps.sh

verify: tools ## gofmt, go vet, staticcheck, go mod tidy check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(GO) mod tidy -diff

bench: ## run the Go benchmarks (see docs/BENCHMARKS.md)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./log/... ./protocol/...

fuzz: ## run every fuzz target for FUZZTIME each (default 10s)
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

chaos-short: ## CI chaos: 3 brokers, ~3 min of mixed faults (kill as power loss, pause, partitions, delay, reset, stalled and failing disks) under load (producers, a consumer group, a share group); fails on any anomaly
	$(GO) build -o bin/ ./cmd/sluiced
	$(GO) run ./scripts/chaos -sluiced bin/sluiced -duration $(CHAOS_SHORT_DURATION) -faults $(CHAOS_SHORT_FAULTS) $(CHAOS_FLAGS)

chaos: ## full-scale chaos (about 1 h): 200 kill -9 cycles over >= 1M acked records, then 4 partition/pause schedules of 200 s and 200 s of decommission and re-add (4 brokers)
	$(GO) build -o bin/ ./cmd/sluiced
	$(GO) run ./scripts/chaos -sluiced bin/sluiced -faults kill -leader-frac 0.5 -kill-cycles 200 -min-acked 1000000 \
		-rate 800 -duration 0 -fault-min 1s -fault-max 4s -heal-min 1s -heal-max 3s -catch-up 5m $(CHAOS_FLAGS)
	$(GO) run ./scripts/chaos -sluiced bin/sluiced -faults partition-leader,partition-random -duration 200s $(CHAOS_FLAGS)
	$(GO) run ./scripts/chaos -sluiced bin/sluiced -faults bridge,one-way,delay,reset -duration 200s $(CHAOS_FLAGS)
	$(GO) run ./scripts/chaos -sluiced bin/sluiced -faults pause,pause-leader -duration 200s -fault-min 3s -fault-max 10s $(CHAOS_FLAGS)
	$(GO) run ./scripts/chaos -sluiced bin/sluiced -brokers 5 -duration 200s $(CHAOS_FLAGS)
	$(GO) run ./scripts/chaos -sluiced bin/sluiced -brokers 4 -faults decommission -duration 200s $(CHAOS_FLAGS)

chaos-power: ## power loss and disk faults (about 15 min): 60 single-broker and 20 whole-cluster power losses, then 200 s of stalled and failing disks (brokers run with --debug-fault-fs)
	$(GO) build -o bin/ ./cmd/sluiced
	$(GO) run ./scripts/chaos -sluiced bin/sluiced -faults power-loss -leader-frac 0.5 -kill-cycles 60 -duration 0 \
		-fault-min 1s -fault-max 4s -heal-min 1s -heal-max 3s $(CHAOS_FLAGS)
	$(GO) run ./scripts/chaos -sluiced bin/sluiced -faults power-loss-all -kill-cycles 20 -duration 0 \
		-fault-min 1s -fault-max 4s -heal-min 1s -heal-max 3s $(CHAOS_FLAGS)
	$(GO) run ./scripts/chaos -sluiced bin/sluiced -faults disk-stall,disk-fail -duration 200s $(CHAOS_FLAGS)

tools: ## install the pinned staticcheck when missing
	@[ -x $(STATICCHECK) ] && $(STATICCHECK) -version | grep -q $(STATICCHECK_VERSION) || \
		GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

clean: ## remove build output
	rm -rf bin/
