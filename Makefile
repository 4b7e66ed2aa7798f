# Two commands on a fresh machine: `make demo` and `make test`. Both set up first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo demo-stop test test-fast bench bench-demo lint format clean

setup:
	@scripts/bootstrap.sh

demo: setup
	$(PY) -m chrom_platform.local.demo

demo-stop:
	$(PY) -m chrom_platform.local.demo --stop

test: setup
	@# two workers (the machine has 2 cores), whole files per worker: module and session
	@# fixtures (a built history, a served UI) are made once per worker, not once per test;
	@# files in the order conftest.py gives (the long ones first), not xdist's by test count
	$(VENV)/bin/pytest -n auto --dist loadfile --no-loadscope-reorder

test-fast: setup
	$(VENV)/bin/pytest -n auto --dist loadfile --no-loadscope-reorder -m "not e2e"

bench: setup
	$(PY) -m chrom_platform_tests.bench

# A newcomer's `make demo` timed from a fresh clone with nothing installed (uninstalls uv,
# InfluxDB and Chromium first: root only; bootstrap installs them again).
bench-demo: setup
	$(PY) -m chrom_platform_tests.bench.fresh_demo --remove-system-packages

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	@# which way imports point (pyproject.toml [tool.importlinter])
	$(VENV)/bin/lint-imports --no-cache
	@# the code location loads (dg re-parses the dbt project), as a user runs it: the venv
	@# not activated, its bin not on PATH (the dbt used is the one beside the interpreter)
	env -u VIRTUAL_ENV PATH=/usr/bin:/bin $(VENV)/bin/dg check defs
	@# sqlfluff's dbt templater compiles the project: point it at a scratch DuckDB, no landing
	mkdir -p .data/lint && cd dbt_chrom && CHROM_DUCKDB_PATH=$(CURDIR)/.data/lint/lint.duckdb \
	  CHROM_LANDING_URI=$(CURDIR)/.data/lint/lake ../$(VENV)/bin/sqlfluff lint models

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	mkdir -p .data/lint && cd dbt_chrom && CHROM_DUCKDB_PATH=$(CURDIR)/.data/lint/lint.duckdb \
	  CHROM_LANDING_URI=$(CURDIR)/.data/lint/lake ../$(VENV)/bin/sqlfluff fix -f models

clean:
	rm -rf .data
