# gearsched build and test entry points. `make test` is what CI runs.

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# Debian packages the integration and differential tests drive: the real
# gearmand, the gearman CLI and gearadmin, PHP's and Perl's clients, the
# databases of gearmand's persistent queues that --watch-queue reads
# (PostgreSQL, MariaDB; the tests start their own servers); GNU time
# measures a client's peak memory; socat carries the Debian clients, whose
# libgearman is built without SSL, over TLS; headless Chromium (with a font
# to render text) drives the web page's test.
DEBS := gearman-job-server gearman-tools php-cli php-gearman libgearman-client-perl postgresql mariadb-server time socat chromium fonts-dejavu-core
# bash with pipefail, so that a benchmark piped through tee still fails
# the recipe.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
FUZZTIME ?= 10m

.PHONY: all build test deps vet fuzz bench clean

all: build

# -buildvcs=auto stamps the commit into the binary (gearsched version)
# even where GOFLAGS turns stamping off.
build:
	$(GO) build -buildvcs=auto -o bin/gearsched ./cmd/gearsched

# deps installs the Debian packages the tests need, only when one is missing.
deps:
	@missing=""; \
	for p in $(DEBS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "make deps: about to install the Debian packages the tests need and this host lacks:$$missing"; \
		echo "make deps: running $(SUDO) apt-get update, then $(SUDO) apt-get install"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

vet:
	$(GO) vet ./...

test: deps vet
	$(GO) test -race -timeout 10m ./...

# fuzz runs each fuzz target for FUZZTIME (default 10m).
fuzz:
	$(GO) test ./gearman -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./gearman -run '^$$' -fuzz '^FuzzDecoder$$' -fuzztime $(FUZZTIME)
	$(GO) test ./gearman/server -run '^$$' -fuzz '^FuzzAdminLine$$' -fuzztime $(FUZZTIME)

# bench measures gearsched against the real gearmand (in memory, and with
# its SQLite queue) in the same run: background throughput, epoch
# lateness, durable epoch submissions, foreground round trips, the sidecar
# in front of gearmand (lateness, backlog drain after a 60 s outage,
# trigger jobs), --watch-queue (lateness per queue backend; CPU, RSS and
# notice time on a 1M-row queue), memory with 1M pending jobs, store
# writes, /metrics and the HTTP API. It keeps the results in bin/bench.txt
# and ends with one table of them (cmd/benchtable), from which README's
# performance section is written.
bench: deps
	@mkdir -p bin && : > bin/bench.txt
	$(GO) test ./cmd/gearsched -run '^$$' -bench 'BackgroundThroughput|EpochLateness|EpochSubmit|ForegroundRoundTrip' -benchtime 1x -count 3 -timeout 30m | tee -a bin/bench.txt
	$(GO) test ./cmd/gearsched -run '^$$' -bench 'SidecarLateness|SidecarOutageDrain|TriggerDelivery' -benchtime 1x -timeout 30m | tee -a bin/bench.txt
	$(GO) test ./cmd/gearsched -run '^$$' -bench 'WatchQueueLateness|WatchQueueMillionRows' -benchtime 1x -timeout 30m | tee -a bin/bench.txt
	$(GO) test ./cmd/gearsched -run '^$$' -bench 'PendingEpochJobs' -benchtime 1x -timeout 2h | tee -a bin/bench.txt
	$(GO) test ./store -run '^$$' -bench Put -benchtime 2000x | tee -a bin/bench.txt
	$(GO) test ./gearman/metrics -run '^$$' -bench . -benchtime 200x | tee -a bin/bench.txt
	$(GO) test ./gearman/httpapi -run '^$$' -bench ListScheduled -benchtime 2000x -timeout 1h | tee -a bin/bench.txt
	@echo; $(GO) run ./cmd/benchtable < bin/bench.txt

clean:
	rm -rf bin
