# ECL developer commands. `make check` is the one command CI runs (see README).
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")

.PHONY: setup test lint types check dev bench fmt clean docs-screenshots

setup:            ## install uv (if missing), Python deps, the Restate server and Chromium (if missing)
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

bench: setup      ## every benchmark, one table of figures beside their baselines, written into README.md
	$(UV) run python bench/summary.py --readme README.md

docs-screenshots: setup  ## run the browser tests, then copy the main pages' screenshots into docs/dashboard/
	$(UV) run pytest tests/browser -q -p no:cacheprovider
	mkdir -p docs/dashboard
	cp test-output/browser/{login,runs-desktop,runs-phone,run-detail,definitions}.png docs/dashboard/

clean:
	rm -rf .venv .tools test-output .pytest_cache .mypy_cache .ruff_cache coverage.xml .coverage*
