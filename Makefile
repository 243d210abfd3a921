# The two commands: `make demo` runs the main job, `make test` the whole test suite. Each creates the virtual
# environment in $(VENV) and installs what is missing first; when nothing changed, that step is skipped.
#   make demo                 # embedded PrimeDepth-mini on held-out rendered scenes
#   make test                 # every test (`make quick` skips the ones marked slow)
#   make lint                 # ruff check + ruff format --check (also run by .ci/run)
#   make test TORCH="torch --index-url https://download.pytorch.org/whl/cu128"   # another torch build
VENV ?= .venv
PYTHON ?= python3
TORCH ?= torch==2.13.0
EXTRAS ?= test
PY := $(VENV)/bin/python
STAMP := $(VENV)/.primedepth-installed

.PHONY: demo test quick lint install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

demo: $(STAMP)
	$(VENV)/bin/primedepth demo

test: $(STAMP)
	$(PY) -m pytest -q

quick: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
