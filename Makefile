# Two entry points (see README): `make demo` runs the pipeline on samples/,
# `make test` runs ruff, mypy and the test suite. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench schemas prices clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@# Wheels of our dependencies, so the pre-commit hook test installs offline.
	$(BIN)/python -m pip wheel -q -w $(VENV)/wheelhouse . setuptools wheel
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python samples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'  # DuckDB, the merge baseline
	$(BIN)/python -m benchmarks.run

schemas: $(STAMP)
	$(BIN)/python -m jsonl_batch.schemas

# The bundled price table, from scripts/sources/ (a pinned LiteLLM price file + our overrides).
prices: $(STAMP)
	$(BIN)/python scripts/make_prices.py

clean:
	rm -rf $(VENV) build *.egg-info
