# The two commands: `make demo` runs the main job, `make test` the whole test suite. Each creates the virtual
# environment in $(VENV) and installs what it needs first: `demo` the library and CLI (`pip install -e .`), `test`
# also the test extra. One stamp per set, so either order works and an unchanged set-up is skipped.
#   make demo                 # embedded PrimeDepth-mini on held-out rendered scenes
#   make test                 # every test (`make quick` skips the ones marked slow)
#   make lint                 # ruff check + ruff format --check (also run by .ci/run)
#   make test TORCH="torch --index-url https://download.pytorch.org/whl/cu128"   # another torch build
VENV ?= .venv
PYTHON ?= python3
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
CORE_STAMP := $(VENV)/.primedepth-installed
TEST_STAMP := $(VENV)/.primedepth-installed-test

.PHONY: demo test quick lint install

install: $(CORE_STAMP)

# $(call setup,SPEC): the venv, torch first (so TORCH= chooses the build), then the package as SPEC
define setup
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e "$(1)"
	touch $@
endef

$(CORE_STAMP): pyproject.toml
	$(call setup,.)

$(TEST_STAMP): pyproject.toml
	$(call setup,.[test])

demo: $(CORE_STAMP)
	$(VENV)/bin/primedepth demo

# pytest's own options (-q) are in pyproject.toml; a second -q here would hide the "N passed" line
test: $(TEST_STAMP)
	$(PY) -m pytest

quick: $(TEST_STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
