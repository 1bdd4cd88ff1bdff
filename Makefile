# Kernels: convolution kernels on OpenBLAS.
#   make deps   installs libopenblas-dev and liblapacke-dev with apt-get when they are missing
#   make test   builds and runs the test suite (the README's test command; CI runs it)
#   make bench  builds the benchmark harness in release mode and prints the tables
#   make bench-quick  a seconds-long smoke run of the harness (CI runs it so it never rots)
#   make bench-peers  the conv table in PyTorch and NumPy beside Kernels, with ratios
#   make test-sanitize  the test suite under AddressSanitizer, then ThreadSanitizer (CI runs it)

SWIFT        ?= swift
APT_PACKAGES := libopenblas-dev liblapacke-dev pkg-config
# apt-get needs root; use sudo when we are not root and it exists.
SUDO         := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null && echo sudo)

# Python peers live in a virtual environment outside the source tree (torch is ~3 GB).
BENCH_VENV   ?= $(HOME)/.cache/kernels-bench-venv
BENCH_PYTHON ?= python3
# Extra kernels-bench arguments, e.g. BENCH_ARGS="--filter conv/resnet --layer 8,64,56,56,64,3,3,1,1,1".
BENCH_ARGS   ?=

.PHONY: all deps build test bench bench-quick bench-peers clean

all: build

deps:
	@if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openblas \
	    && [ -f /usr/include/lapacke.h ]; then \
	  echo "deps: OpenBLAS $$(pkg-config --modversion openblas) and LAPACKE are installed"; \
	else \
	  echo "deps: OpenBLAS or LAPACKE missing; installing $(APT_PACKAGES) with apt-get"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

build: deps
	$(SWIFT) build

test: deps
	$(SWIFT) test

bench: deps
	cd Benchmarks && $(SWIFT) run -c release kernels-bench $(BENCH_ARGS)

bench-quick: deps
	cd Benchmarks && $(SWIFT) run -c release kernels-bench --quick

bench-peers: deps
	cd Benchmarks && $(SWIFT) build -c release --product kernels-bench
	@if ! "$(BENCH_VENV)/bin/python" -c "import torch, numpy" 2>/dev/null; then \
	  echo "bench-peers: installing torch and numpy into $(BENCH_VENV)"; \
	  { [ -x "$(BENCH_VENV)/bin/python" ] || $(BENCH_PYTHON) -m venv "$(BENCH_VENV)"; } && \
	  "$(BENCH_VENV)/bin/python" -m pip install --quiet torch numpy; \
	fi
	"$(BENCH_VENV)/bin/python" Scripts/bench_peers.py \
	  --kernels-bench "$$(cd Benchmarks && $(SWIFT) build -c release --show-bin-path)/kernels-bench" $(BENCH_ARGS)

# Each sanitizer builds in its own scratch path so it never invalidates the normal build.
# Optimized builds (-c release, with -enable-testing for the suite's @testable import): the
# sanitizers instrument every load and store either way, and the float64 reference loops ran
# 4-8x longer unoptimized. Under TSan on 2 cores, per suite, debug -> release: channel-last
# 215 -> 34 s, direct 167 -> 21 s, phase backward-data 72 -> 15 s, GEMM 64 -> 15 s, for ~50 s
# more build. The fuzz tests are cut to SANITIZE_FUZZ_ITERATIONS. UndefinedBehaviorSanitizer
# is not run: swiftc rejects -sanitize=undefined on Linux, and Swift code already traps on
# overflow and bounds.
# --disable-xctest: the suite is Swift Testing only, and XCTest's empty run leaks its own
# suite objects at exit, which LeakSanitizer would report.
SANITIZE_FUZZ_ITERATIONS ?= 100
SANITIZE_BUILD := -c release -Xswiftc -enable-testing --disable-xctest
.PHONY: test-sanitize
test-sanitize: deps
	KERNELS_FUZZ_ITERATIONS=$(SANITIZE_FUZZ_ITERATIONS) $(SWIFT) test $(SANITIZE_BUILD) --sanitize=address --scratch-path .build-asan
	KERNELS_FUZZ_ITERATIONS=$(SANITIZE_FUZZ_ITERATIONS) $(SWIFT) test $(SANITIZE_BUILD) --sanitize=thread --scratch-path .build-tsan

clean:
	rm -rf .build Benchmarks/.build
