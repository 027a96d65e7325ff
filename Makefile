# ECL developer commands. `make check` is the one command CI runs (see README).
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")

.PHONY: setup test lint types check dev bench fmt clean

setup:            ## install uv (if missing), Python deps and the Restate server
	@scripts/setup.sh

lint: setup       ## ruff lint + format check + import-linter layer contracts
	$(UV) run ruff check src tests bench
	$(UV) run ruff format --check src tests bench
	$(UV) run lint-imports

types: setup      ## mypy --strict over src/
	$(UV) run mypy

test: setup       ## the whole pytest suite with coverage (starts PostgreSQL if needed)
	@scripts/services.sh
	env -u PYTHONDONTWRITEBYTECODE $(UV) run pytest --cov --cov-report=term --cov-report=xml -p no:cacheprovider

check: lint types test   ## everything CI runs

fmt: setup
	$(UV) run ruff check --fix src tests bench
	$(UV) run ruff format src tests bench

dev: setup        ## local Restate server + ECL endpoint (Ctrl-C stops both)
	$(UV) run ecl dev

bench: setup      ## benchmarks (print figures; never part of `make check`)
	$(UV) run python bench/run.py
	$(UV) run python bench/prompt_cache.py
	$(UV) run python bench/tracing.py
	$(UV) run python bench/dashboard.py

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache coverage.xml .coverage*
