# Causeway. `make test` is what CI runs (see .ci/run); `make run` is the local multi-cluster mesh.
GO        ?= go
BIN       := bin/causeway
FUZZTIME  ?= 10s
export GOFLAGS := -buildvcs=false

.PHONY: build test test-short race vet lint fmt fuzz bench run generate tools clean

build:
	$(GO) build -o $(BIN) ./cmd/causeway
	CGO_ENABLED=0 $(GO) build -o bin/causeway-proxy ./cmd/causeway-proxy

## test: real tools (SPIRE, kube-apiserver, etcd, protoc; cached), vet, gofmt, the whole
## suite under -race, then a short fuzz pass. See scripts/test.sh.
test:
	FUZZTIME=$(FUZZTIME) ./scripts/test.sh

## tools: build or install the real components the tests use (cached under ~/.cache/causeway).
tools:
	./scripts/spire.sh
	./scripts/kube-apiserver.sh

test-short:
	$(GO) test -short -count=1 ./...

vet:
	$(GO) vet ./...

lint: vet
	@bad=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '\.pb\.go$$')

## fuzz: every Fuzz* target for FUZZTIME (corpora in testdata/fuzz are run by `go test` too).
fuzz:
	@./scripts/fuzz.sh $(FUZZTIME)

## bench: side-by-side figures (no proxy, Causeway 1 and 2 hops, HAProxy, NGINX); see bench/README.md.
bench: build
	./bench/run.sh

## bench-quick: the same with 2 s loads and smaller transfers, as a smoke run.
.PHONY: bench-quick
bench-quick: build
	BENCH_DURATION=2s BENCH_ARGS="--bulk-mib 256 --bulk-reps 1 $(BENCH_ARGS)" ./bench/run.sh

## generate: regenerate api/**/*.pb.go with pinned protoc plugins (scripts/protoc.sh).
generate:
	./scripts/protoc.sh

## run: two linked clusters on loopback with demo traffic from west to east (README).
run: build
	$(BIN) up -f examples/multicluster

clean:
	rm -rf bin
