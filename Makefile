# SPDX-License-Identifier: Apache-2.0
# Thin wrapper over CMake. On a fresh Debian 12 machine:
#   make demo   installs what is missing, builds, runs the demo
#   make test   installs what is missing, builds, runs every test (ctest)
BUILD      ?= build
BUILD_SAN  ?= build-sanitize
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
WERROR     ?= $(if $(AGS_WERROR),$(AGS_WERROR),OFF)
FUZZ_SECONDS ?= 20
# make chaos: seconds of faults, seed (empty: a new one, printed), daemons, writers, and
# more options of tests/chaos/chaos.py (e.g. CHAOS_ARGS=--keep).
CHAOS_SECONDS ?= 600
CHAOS_SEED    ?=
CHAOS_NODES   ?= 5
CHAOS_WRITERS ?= 5
CHAOS_ARGS    ?=

.PHONY: all deps build test demo test-sanitize fuzz fuzz-smoke bench bench-python chaos format lint clean \
	install deb test-deb bench-daemon bench-compare

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAGS_WERROR=$(WERROR)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	./scripts/demo.sh $(BUILD)

test-sanitize: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DAGS_SANITIZE=ON -DAGS_BENCH=OFF \
		-DAGS_WERROR=$(WERROR)
	cmake --build $(BUILD_SAN) -j $(JOBS)
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -j $(JOBS)

fuzz: deps
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=Debug -DAGS_FUZZ=ON -DAGS_SANITIZE=ON \
		-DAGS_TESTS=OFF -DAGS_BENCH=OFF -DAGS_WERROR=$(WERROR)
	cmake --build $(BUILD_FUZZ) -j $(JOBS)

# Runs every fuzz target for FUZZ_SECONDS on a copy of its seed corpus.
fuzz-smoke: fuzz
	./scripts/fuzz-smoke.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

# The long fault-injection run (tests/chaos/README.md); needs root and network namespaces.
chaos: build
	/usr/bin/python3 tests/chaos/chaos.py --bin-dir $(BUILD)/bin --duration $(CHAOS_SECONDS) \
		--nodes $(CHAOS_NODES) --writers $(CHAOS_WRITERS) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED)) \
		$(CHAOS_ARGS)

bench: build
	@ls $(BUILD)/bench

# The daemon path end to end (bench/daemon_bench.py): W1 and W2 through agentsyncd and the CLI.
BENCH_N ?= 100000
bench-daemon: build
	/usr/bin/python3 bench/daemon_bench.py --bin-dir $(BUILD)/bin -n $(BENCH_N)

# W1 of the daemons next to Redis replication and NATS JetStream (installs both; needs root).
BENCH_PAIRS ?= 2
bench-compare: build
	sh bench/compare.sh $(BUILD) $(BENCH_N) $(BENCH_PAIRS)

# The Python package against the C library: W1 of sync_bench, pairs back to back.
bench-python: build
	PYTHONPATH=$(BUILD)/python /usr/bin/python3 bindings/python/bench.py \
		--sync-bench $(BUILD)/bench/sync_bench

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

lint: build
	./scripts/lint.sh $(BUILD)

# Installs into PREFIX (default /usr/local; the build's CMAKE_INSTALL_PREFIX), under DESTDIR if set.
PREFIX ?= /usr/local
install: build
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install $(BUILD)

# The Debian packages (debian/), in build-deb/.
deb: deps
	./scripts/deb.sh build-deb

# Builds the packages, runs lintian, installs them on this machine, runs the
# installed daemon, removes them (needs root; leaves the machine as it was).
test-deb: deps
	./tests/pkg/deb_test.sh build-deb

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ) build-deb
