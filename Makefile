# Cairn. `make run` starts a complete local demo; `make test` runs the tests.
GO        ?= go
BIN       := bin/processor
PKGS      := ./...
TEST_TIMEOUT ?= 14m

.PHONY: all build run test test-short bench chaos lint fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/processor

## run: embedded broker + processor + example definitions + demo events.
run: build
	./$(BIN) dev --definitions examples

## test: the whole suite, against the embedded broker (kfake) over the real protocol.
test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

## bench: the standard benchmark suite; writes bench/RESULTS.md.
bench: build
	./$(BIN) bench --out bench/RESULTS.md --json bench/eos.json

## chaos: long fault runs (kills at random moments, many cycles).
chaos: build
	CAIRN_CHAOS_CYCLES=100 $(GO) test -count=1 -timeout 60m -run 'Crash|Chaos' -v ./cmd/processor/ ./engine/

## lint: formatting and vet.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## fuzz: a short run of every fuzz target.
fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzDecodeEvent -fuzztime=30s ./engine
	$(GO) test -run=^$$ -fuzz=FuzzDecodeKey -fuzztime=30s ./state
	$(GO) test -run=^$$ -fuzz=FuzzParse -fuzztime=30s ./operators/defs
	$(GO) test -run=^$$ -fuzz=FuzzParseDefinition -fuzztime=30s ./operators/journey

clean:
	rm -rf bin
