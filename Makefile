# maglev — set-up, checks and runs. Everything installs into .venv, created here.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all venv yaml-headers test test-cython test-python lint format types check run bench bench-deps clean

all: check

# The editable install in setuptools' "compat" mode is a path in a .pth file; its default mode is an
# import finder that imports pathlib and more at every interpreter start (45 ms: a tenth of
# `maglevd check-config` of the benchmark config). Where setuptools no longer has compat mode,
# its default one.
$(STAMP): pyproject.toml setup.py maglev/_diff.pyx maglev/_table.pyx maglev/config/_fastload.pyx \
	    maglev/config/_fastbuild.pyx \
	    maglev/health/_sockops.pyx \
	    | yaml-headers
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel "Cython>=3.0,<4"
	$(PIP) install --quiet --no-build-isolation -e '.[test,bench]' \
	    --config-settings editable_mode=compat 2>/dev/null \
	  || $(PIP) install --quiet --no-build-isolation -e '.[test,bench]'
	$(PY) setup.py --quiet build_ext --inplace
	touch $(STAMP)

venv: $(STAMP)

# The config's compiled loader (maglev/config/_fastload.pyx) is built on libyaml's C API: on a
# fresh Debian machine its headers come from libyaml-dev, installed here (with apt-get, as root or
# through sudo) only when /usr/include/yaml.h is missing.
yaml-headers:
	@if [ ! -e /usr/include/yaml.h ]; then \
	    sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	    echo "installing libyaml-dev with apt-get"; \
	    $$sudo apt-get update -qq && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y -qq --no-install-recommends libyaml-dev; \
	fi

# The suite runs twice: on the compiled engine (the tests assert it really loaded) and on the
# pure-Python twin.
test: test-cython test-python

test-cython: $(STAMP)
	MAGLEV_REQUIRE_EXTENSIONS=1 $(PY) -m pytest $(PYTEST_ARGS)

test-python: $(STAMP)
	MAGLEV_NO_EXTENSIONS=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check maglev tests benchmarks
	$(VENV)/bin/ruff format --check maglev tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix maglev tests benchmarks
	$(VENV)/bin/ruff format maglev tests benchmarks

types: $(STAMP)
	$(VENV)/bin/mypy

check: lint types test

# Runs the demo: maglevd on the embedded VPP emulator with demo backends on loopback.
run: $(STAMP)
	$(VENV)/bin/maglevd demo --config etc/maglev-demo.yaml

bench: $(STAMP) bench-deps
	$(VENV)/bin/maglev-bench all

# The checker benchmark measures against Debian's nginx and HAProxy. Only this target installs
# them (with apt-get, as root or through sudo, when missing): the benchmarks and the tests never
# install anything, and a smoke run skips what needs them.
bench-deps:
	@PATH="$$PATH:/usr/sbin:/usr/local/sbin"; missing=""; \
	for pair in nginx:nginx-light haproxy:haproxy; do \
	    command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	    sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	    echo "installing$$missing with apt-get"; \
	    $$sudo apt-get update -qq && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y -qq --no-install-recommends $$missing; \
	fi

clean:
	rm -rf $(VENV) build *.egg-info maglev/_diff.c maglev/_table.c maglev/config/_fastload.c \
	    maglev/*.so maglev/config/*.so
