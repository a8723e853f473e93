# OpenVisit: `make run` serves the demo, `make test` runs every check. `make help` lists the rest.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules --warn-undefined-variables

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV := $(CURDIR)/$(BIN)/uv
UV_VERSION := 0.13.9
LOCK_DIR := requirements
LOCKS := $(LOCK_DIR)/base.lock $(LOCK_DIR)/dev.lock
STAMP := $(VENV)/.installed
AXE := node_modules/axe-core/axe.min.js
LOCALES := src/openvisit/web/locales
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
UPGRADE ?=

.PHONY: help venv install messages run test lint fmt bench lock lock-check clean

help:
	@echo "make run          install, migrate var/openvisit.sqlite3, load the demo, serve http://$(HOST):$(PORT)"
	echo "make test         every gate: lock, ruff format, ruff check, mypy, import contracts, pytest (SQLite + PostgreSQL)"
	echo "make lint         the static gates only"
	echo "make fmt          format and auto-fix with ruff"
	echo "make bench        benchmarks (figures go to benchmarks/README.md)"
	echo "make install      create .venv and install the locked dependencies (venv is the same)"
	echo "make messages     extract translatable messages into the catalogs (then translate the new ones)"
	echo "make lock         re-resolve $(LOCKS) from pyproject.toml (UPGRADE=1 to take newer releases)"
	echo "make clean        remove caches (keeps .venv and var/)"

# --- environment ---------------------------------------------------------------------------------

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
		|| { echo "OpenVisit needs Python 3.11; $(PYTHON) is $$($(PYTHON) --version 2>&1)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# uv ignores pip's configuration (constraints, local indexes): the lock alone decides what is installed.
$(STAMP): $(BIN)/python $(LOCK_DIR)/dev.lock pyproject.toml
	[[ "$$($(UV) --version 2>/dev/null)" == "uv $(UV_VERSION)"* ]] \
		|| $(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) pip sync --python $(BIN)/python $(LOCK_DIR)/dev.lock
	$(UV) pip install --python $(BIN)/python --no-deps --editable .
	touch $@

venv install: $(STAMP)

# axe-core (npm registry, pinned in package-lock.json) is injected into pages by the accessibility tests.
$(AXE): package.json package-lock.json
	command -v npm >/dev/null || scripts/ensure-debian-packages.sh nodejs npm
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The app compiles the .po catalogs in memory; this only brings new messages into them.
messages: $(STAMP)
	$(BIN)/python -m tools.messages update
	$(BIN)/python -m tools.messages check || echo "translate the messages above in $(LOCALES)/*/LC_MESSAGES/messages.po" >&2

# --- lock files ----------------------------------------------------------------------------------

# $(call compile-locks): resolve both locks under requirements/ of the current directory; a lock already
# there pins what it holds, so only a change in pyproject.toml (or UPGRADE=1) moves a version.
define compile-locks
	$(UV) pip compile pyproject.toml --quiet --python-version 3.11 --universal --generate-hashes \
		--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) -o $(LOCK_DIR)/base.lock
	$(UV) pip compile pyproject.toml --quiet --extra dev --constraint $(LOCK_DIR)/base.lock \
		--python-version 3.11 --universal --generate-hashes \
		--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) -o $(LOCK_DIR)/dev.lock
endef

lock: $(BIN)/python
	[[ -x $(UV) ]] || $(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	mkdir -p $(LOCK_DIR)
	$(call compile-locks)

# Fails when pyproject.toml asks for something the locks do not hold (run `make lock`).
# It resolves again in a scratch copy, so that the paths written into the locks' comments are the same.
lock-check: $(STAMP)
	@tmp="$$(mktemp -d)"
	trap 'rm -rf "$$tmp"' EXIT
	mkdir "$$tmp/$(LOCK_DIR)"
	cp pyproject.toml README.md "$$tmp"/
	cp $(LOCKS) "$$tmp/$(LOCK_DIR)"/
	cd "$$tmp"
	$(call compile-locks)
	cd "$(CURDIR)"
	for lock in $(LOCKS); do
		diff -u "$$lock" "$$tmp/$$lock" >&2 \
			|| { echo "$$lock does not match pyproject.toml: run \`make lock\` and commit it" >&2; exit 1; }
	done

# --- run -----------------------------------------------------------------------------------------

# `openvisit demo` loads the demo only into an empty database, and ends by printing the demo logins.
run: install
	$(BIN)/openvisit db upgrade
	$(BIN)/openvisit demo
	exec $(BIN)/openvisit serve --host $(HOST) --port $(PORT)

# --- checks --------------------------------------------------------------------------------------

# Every gate runs even when an earlier one fails, so one run shows every problem; any failure fails.
test: install $(AXE)
	@failed=()
	gate() { local name="$$1"; shift; echo "==> $$name" >&2; "$$@" || failed+=("$$name"); }
	gate "lock" $(MAKE) --no-print-directory lock-check
	gate "lint" $(MAKE) --no-print-directory lint
	chromium="$$(scripts/ensure-chromium.sh)"
	pg_url="$$(PYTHON=$(BIN)/python scripts/ensure-postgres.sh)"
	trap 'scripts/ensure-postgres.sh --stop' EXIT
	gate "pytest (SQLite and $$pg_url)" \
		env OPENVISIT_TEST_PG_URL="$$pg_url" OPENVISIT_CHROMIUM="$$chromium" $(BIN)/pytest -n 2 -p no:cacheprovider $(PYTEST_ARGS)
	(( $${#failed[@]} == 0 )) || { echo "FAILED: $${failed[*]}" >&2; exit 1; }

lint: install
	@failed=()
	gate() { local name="$$1"; shift; echo "==> $$name" >&2; "$$@" || failed+=("$$name"); }
	gate "ruff format" $(BIN)/ruff format --check .
	gate "ruff check" $(BIN)/ruff check .
	gate "mypy" $(BIN)/mypy
	gate "import contracts" $(BIN)/lint-imports --no-cache
	(( $${#failed[@]} == 0 )) || { echo "FAILED: $${failed[*]}" >&2; exit 1; }

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	@chromium="$$(scripts/ensure-chromium.sh)"
	pg_url="$$(PYTHON=$(BIN)/python scripts/ensure-postgres.sh)"
	trap 'scripts/ensure-postgres.sh --stop' EXIT
	OPENVISIT_BENCH_PG_URL="$$pg_url" OPENVISIT_CHROMIUM="$$chromium" $(BIN)/python -m benchmarks

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache build dist
	find . -path ./$(VENV) -prune -o -name __pycache__ -print0 | xargs -0 rm -rf
