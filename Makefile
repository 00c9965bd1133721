# Cairn. `make run` starts a complete local demo; `make test` runs the tests.
GO        ?= go
BIN       := bin/processor
PKGS      := ./...
TEST_TIMEOUT ?= 14m

.PHONY: all build run test test-short bench bench-funnels bench-floor chaos stress lint fuzz clean tools

all: build

build:
	$(GO) build -o $(BIN) ./cmd/processor

## run: embedded broker + processor + example definitions + demo events.
run: build
	./$(BIN) dev --definitions examples

## tools: optional test tools (promtool, for the deploy alert rules).
tools:
	@command -v promtool >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null); }

## test: the whole suite, against the embedded broker (kfake) over the real protocol.
test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

## bench: the standard benchmark suite (docs: bench/RESULTS.md, which it rewrites with plots
## and bench/*.json; compare two runs with `processor bench compare old.json new.json`).
bench: build
	./$(BIN) bench --events 500000 --scaling 1,2,3 --section suite \
		--title "Standard suite: one counting operator" --out bench/RESULTS.md --json bench/suite.json
	./$(BIN) bench --events 200000 --definitions examples --latency 0.5 --section suite-examples \
		--title "The example definitions (journeys, segments, funnels, policy)" --out bench/RESULTS.md --json bench/suite-examples.json
	./$(BIN) bench --events 20000 --runs 1 --modes passthrough,cairn --generate 100/20/20 --latency "" --section suite-generated \
		--title "Generated definitions: 100 journeys, 20 segments, 20 funnels" --out bench/RESULTS.md --json bench/suite-generated.json
	./$(BIN) bench cluster --users 200000 --runs 3

## bench-funnels: the funnel ingest cost (issue #5): alternating rounds of 50 funnels
## against each baseline through the whole pipeline; ROUNDS=5 EVENTS=100000.
bench-funnels: build
	bench/funnel-rounds.sh

## bench-floor: the passthrough, Cairn with no definitions, the counter and the examples in
## alternating rounds: how far the definitions are from issue #6's target; ROUNDS=3 EVENTS=500000.
bench-floor: build
	bench/floor-rounds.sh

## chaos: long fault runs (kills at random moments and at every named failpoint, CHAOS_CYCLES
## of each); figures in bench/CHAOS.md.
CHAOS_CYCLES ?= 100
chaos: build
	CAIRN_CHAOS_CYCLES=$(CHAOS_CYCLES) CAIRN_CHAOS_REPORT=$(CURDIR)/bench/CHAOS.md CAIRN_BIG_BROADCAST=1000000 \
		$(GO) test -count=1 -timeout 150m -run 'Crash|Zombie|Frozen|RestartAfterKill|BrokerRestart|CommitPathFaults|Storm|DiskFull|Failpoint|BigBroadcast|Checker' -v ./cmd/processor/ ./engine/
	$(MAKE) stress

## stress: the commit-path fault cases in four processes at once, five times
## each, so that broker answers race the commit. On an idle machine they
## arrive in time; under load this found outputs lost to a commit decided
## before every produce was answered (engine/loop.go, outcome).
stress:
	$(GO) test -c -o bin/engine.test ./engine
	cd engine && pids=""; for i in 1 2 3 4; do \
		../bin/engine.test -test.count=5 -test.run TestEngineCommitPathFaults > ../bin/stress-$$i.log 2>&1 & pids="$$pids $$!"; done; \
	rc=0; for p in $$pids; do wait $$p || rc=1; done; \
	if [ $$rc != 0 ]; then grep -h -- '--- FAIL\|faults_test' ../bin/stress-*.log; else echo "stress: 4 × 5 runs of TestEngineCommitPathFaults passed"; fi; exit $$rc

## lint: formatting and vet.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## fuzz: a short run of every fuzz target (FUZZTIME each, default 20s).
FUZZTIME ?= 20s
FUZZ_TARGETS := engine:FuzzDecodeEvent engine:FuzzJSONAgreesWithTheStandardLibrary state:FuzzDecodeKey operators/defs:FuzzParse \
	operators/journey:FuzzParseDefinition operators/funnel:FuzzDecodeRow operators/funnel:FuzzParse \
	operators/funnel:FuzzDecodeUserState operators/funnel:FuzzDecodeBinaryState operators/funnel:FuzzDecodeRecord \
	operators/funnel:FuzzDecodeLogPart operators/segment:FuzzDecodeChunk \
	operators/segment:FuzzDecodeDictionary operators/segment:FuzzDefinitions internal/api:FuzzAPIHandlers
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn ./$$pkg"; $(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) ./$$pkg || exit 1; done

clean:
	rm -rf bin
