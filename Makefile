# The two set-up commands of the README, plus the developer's helpers.
#   make quickstart   the main job: examples/quickstart.py on an embedded SQLite file
#                     (installs the package alone, no dev tools)
#   make test         the whole suite, with a PostgreSQL of its own on 127.0.0.1 (a temporary
#                     directory, a free port), stopped and removed when it ends
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: quickstart test lint bench clean

# editable installs need pip 21.3 or later; a newer bundled pip is kept as it is
$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q 'pip>=21.3'

# the package alone: all that examples/quickstart.py needs
$(VENV)/.base: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

# the package with the dev extra: tests, linters, the stock savers for the benchmarks
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.base

quickstart: $(VENV)/.base
	$(PY) examples/quickstart.py

test: $(VENV)/.installed
	VENV=$(VENV) scripts/test.sh $(ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check langgraph_runstore tests examples benchmarks
	$(VENV)/bin/ruff format --check langgraph_runstore tests examples benchmarks
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	VENV=$(VENV) scripts/bench.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
