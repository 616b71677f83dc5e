# The two set-up commands of the README, plus the developer's helpers.
#   make quickstart   the main job: examples/quickstart.py on an embedded SQLite file
#   make test         the whole suite, with a throwaway PostgreSQL on 127.0.0.1
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: quickstart test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

quickstart: $(VENV)/.installed
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
