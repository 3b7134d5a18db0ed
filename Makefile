# maglev — set-up, checks and runs. Everything installs into .venv, created here.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all venv test test-cython test-python lint format types check run bench clean

all: check

$(STAMP): pyproject.toml setup.py maglev/_diff.pyx
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel "Cython>=3.0,<4"
	$(PIP) install --quiet --no-build-isolation -e '.[test,bench]'
	$(PY) setup.py --quiet build_ext --inplace
	touch $(STAMP)

venv: $(STAMP)

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

bench: $(STAMP)
	$(VENV)/bin/maglev-bench all

clean:
	rm -rf $(VENV) build *.egg-info maglev/_diff.c maglev/*.so
