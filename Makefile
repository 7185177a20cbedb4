# Common tasks. `test` and `bench` need root: they build real namespaces.
GO ?= go

# The same flags as the README's test command. Root tests of different
# packages run in parallel and must not collide (unique lab names); on a
# loaded machine TESTFLAGS='-count=1 -p 1' runs one package at a time.
TESTFLAGS ?= -count=1

# e.g. make bench BENCHFLAGS='-sizes 10x100 -runs 10', or BENCHFLAGS=-plan-only
# for the plan table alone (validate and plan 100, 1000 and 4000 nodes; no root),
# BENCHFLAGS=-scenario-only for the scenario table alone (run, grade, a class of 30)
BENCHFLAGS ?=

# `make install` copies the binary `make build` made to $(DESTDIR)$(BINDIR).
# /usr/local/bin is on root's PATH, also under sudo (Debian's and Ubuntu's
# secure_path), so `sudo labctl ...` finds it.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin

.PHONY: build install uninstall test bench vet fmt-check

# Static (no cgo): every pod supervisor and builtin server runs this binary,
# and without the C library each needs about 1.5 MB less memory.
build:
	CGO_ENABLED=0 $(GO) build -o bin/labctl ./cmd/labctl

# No build here: `sudo make install` would run go as root, where sudo's PATH
# usually has no go. Build as yourself first.
install:
	@test -x bin/labctl || { echo "bin/labctl is missing: run make build first, then make install" >&2; exit 1; }
	install -D -m 0755 bin/labctl $(DESTDIR)$(BINDIR)/labctl

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/labctl

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
