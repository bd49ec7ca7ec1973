# smimeproxy — build, run, test.
#   make run    the demo (needs nothing but Go)
#   make test   installs the Debian packages the tests need when missing, then runs the whole suite
GO        ?= go
BIN       := bin/smimeproxy
GOFLAGS_BUILD := -buildvcs=true
FUZZTIME  ?= 30s
FUZZTIME_CI ?= 5s
TESTFLAGS ?= -race -shuffle=on -timeout 20m

.PHONY: all build run test test-unit test-deps bench fuzz fuzz-ci lint clean

all: build

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/smimeproxy

run: build
	./scripts/run.sh $(BIN)

# test-deps installs what the end-to-end tests run (openssl, gpgsm, Dovecot,
# Postfix, PostgreSQL, Chromium, swaks, msmtp, mutt, mbsync) when missing.
test-deps:
	./scripts/install-test-deps.sh

test: test-deps build
	CGO_ENABLED=0 $(GO) build ./...
	$(GO) vet ./...
	SMIMEPROXY_BIN=$(CURDIR)/$(BIN) SMIMEPROXY_ARTIFACTS=$${SMIMEPROXY_ARTIFACTS:-$(CURDIR)/bin/artifacts} $(GO) test $(TESTFLAGS) ./...
	$(MAKE) fuzz-ci

# test-unit: the suite without installing anything (tests needing a missing tool skip).
test-unit:
	$(GO) test -shuffle=on ./...

bench: build
	./scripts/bench.sh

# fuzz runs every native fuzz target for FUZZTIME; fuzz-ci for FUZZTIME_CI.
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

fuzz-ci:
	./scripts/fuzz.sh $(FUZZTIME_CI)

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest ./...

clean:
	rm -rf bin
