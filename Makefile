# Common tasks. `test` and `bench` need root: they build real namespaces.
GO ?= go

# Root tests of different packages share host-wide kernel state (the rtnl
# lock, the neighbour table, the netns cleanup workqueue); one package at a
# time keeps them from slowing each other into timeouts. Tests inside a
# package still run in parallel where they say so.
TESTFLAGS ?= -count=1

# e.g. make bench BENCHFLAGS='-sizes 10x100 -runs 10'
BENCHFLAGS ?=

.PHONY: build test bench vet fmt-check

build:
	$(GO) build -o bin/labctl ./cmd/labctl

# The README's test command; a skipped root test is a failure here.
test:
	LABCTL_REQUIRE_ROOT=1 $(GO) test $(TESTFLAGS) ./...

bench:
	$(GO) run ./cmd/labbench $(BENCHFLAGS)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
