# Kernels: convolution kernels on OpenBLAS.
#   make deps   installs libopenblas-dev and liblapacke-dev with apt-get when they are missing
#   make test   builds and runs the test suite (the README's test command; CI runs it)
#   make bench  builds the benchmark harness in release mode and prints the tables

SWIFT        ?= swift
APT_PACKAGES := libopenblas-dev liblapacke-dev pkg-config
# apt-get needs root; use sudo when we are not root and it exists.
SUDO         := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null && echo sudo)

.PHONY: all deps build test bench clean

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
	@echo "The benchmark harness is not written yet."

clean:
	rm -rf .build Benchmarks/.build
