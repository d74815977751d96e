# One command per job. `make test` builds .venv on a fresh machine first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format typecheck unit bench bench-gateway clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hookbouncer demo

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

# Benchmarks print ratios against a baseline measured in the same run;
# docs/benchmarks.md records the figures.
bench: $(STAMP)
	$(BIN)/python bench/allowlist_lookup.py
	$(BIN)/python bench/verify_request.py
	$(BIN)/python bench/feeds_parse.py
	$(BIN)/python bench/inbox_commit.py

# Needs nginx from Debian's packages: apt-get install -y nginx
bench-gateway: $(STAMP)
	$(BIN)/python bench/gateway_vs_nginx.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
