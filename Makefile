# browserfleet developer tasks. Every target is idempotent; `make setup` is a no-op when nothing changed.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Lives inside the venv, so deleting the venv also forgets the install.
STAMP := $(VENV)/.browserfleet-dev.stamp
# The tests' Node packages (botd; puppeteer-core, chrome-remote-interface as clients): npm ci from the
# lockfile; the stamp inside node_modules makes it a no-op until the lockfile changes.
JS_DIR := tests/support/js
JS_STAMP := $(JS_DIR)/node_modules/.browserfleet.stamp
# gcc builds the gateway's hot path (src/browserfleet/cdp/_plain.c) at pip install.
APT_PACKAGES := chromium chromium-headless-shell ffmpeg bubblewrap gcc
# For the tests only (`make serve` runs on SQLite): they start throwaway servers of their own,
# never the system's (Redis backs the GCS of the cluster test whose head is restarted).
TEST_APT_PACKAGES := postgresql redis-server
CHROMIUM := /usr/lib/chromium/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || ! command -v sudo >/dev/null || echo sudo)

SERVE_ARGS ?=
PYTEST_ARGS ?=
LIFECYCLE_ARGS ?=
GATEWAY_ARGS ?=

.PHONY: help setup system-deps test-system-deps apt-packages js-deps serve test lint bench clean distclean

help:
	@echo "make setup      install Debian's chromium, chromium-headless-shell, ffmpeg, bubblewrap, gcc; create $(VENV); pip install -e '.[dev]'"
	@echo "make serve      run the server (SERVE_ARGS='--port 8000 --data-dir DIR ...')"
	@echo "make test       also install Debian's postgresql, redis-server, nodejs, npm and the tests' npm packages; run the whole pytest suite (PYTEST_ARGS='tests/unit -x ...')"
	@echo "make lint       ruff check, ruff format --check, mypy --strict (package, benchmarks, tests), lint-imports"
	@echo "make bench      run the benchmarks (LIFECYCLE_ARGS='-n 50' GATEWAY_ARGS='--shots 60')"
	@echo "make clean      remove caches and build artifacts (distclean: also $(VENV))"

setup: system-deps $(STAMP)

# Without Node the tests that need it (stealth, Node clients) skip saying so; everything else runs.
js-deps:
	@if ! command -v npm >/dev/null; then \
	  echo "note: npm not found: the botd, Puppeteer and chrome-remote-interface tests will be skipped (install nodejs and npm)"; \
	elif [ ! -f "$(JS_STAMP)" ] || [ "$(JS_DIR)/package-lock.json" -nt "$(JS_STAMP)" ]; then \
	  echo "==> npm ci ($(JS_DIR))"; \
	  if (cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error); then touch "$(JS_STAMP)"; \
	  else echo "warning: npm ci failed (no registry?): the botd, Puppeteer and chrome-remote-interface tests will be skipped"; fi; \
	fi

# System packages come from Debian only; nothing downloads a browser of its own.
system-deps:
	@$(MAKE) --no-print-directory apt-packages PACKAGES="$(APT_PACKAGES)"; \
	test -x $(CHROMIUM) || { echo "error: $(CHROMIUM) is missing after install" >&2; exit 1; }; \
	test -x /usr/bin/bwrap || { echo "error: /usr/bin/bwrap is missing after install" >&2; exit 1; }

test-system-deps:
	@$(MAKE) --no-print-directory apt-packages PACKAGES="$(TEST_APT_PACKAGES)"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || { echo "error: PostgreSQL's initdb is missing after install" >&2; exit 1; }; \
	test -x /usr/bin/redis-server || { echo "error: redis-server is missing after install" >&2; exit 1; }; \
	if ! command -v npm >/dev/null; then \
	  echo "==> apt-get install nodejs npm"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm; \
	fi

apt-packages:
	@missing=""; \
	for pkg in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$pkg"; \
	done; \
	if [ ! -e "$(VENV)/pyvenv.cfg" ] && ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then \
	  missing="$$missing python3-venv"; \
	fi; \
	if ! $(PYTHON) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("include"), "Python.h")))' 2>/dev/null; then \
	  missing="$$missing python3-dev"; \
	fi; \
	if [ -n "$$missing" ]; then \
	  echo "==> apt-get install$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/pyvenv.cfg:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "error: $(PYTHON) is older than 3.11 (set PYTHON=python3.11)" >&2; exit 1; }
	@echo "==> creating $(VENV) with $$($(PYTHON) --version)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml setup.py src/browserfleet/cdp/_plain.c $(VENV)/pyvenv.cfg
	@echo "==> pip install -e '.[dev]'"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

serve: setup
	$(BIN)/browserfleet serve $(SERVE_ARGS)

# pytest exit codes: 1 tests failed, 2 interrupted, 3 internal error, 4 usage error, 5 no tests collected.
test: setup test-system-deps js-deps
	@rc=0; $(BIN)/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

# Runs every check even when an earlier one fails, then fails if any did.
lint: setup
	@failed=""; \
	echo "==> ruff check"; $(BIN)/ruff check . || failed="$$failed ruff-check"; \
	echo "==> ruff format --check"; $(BIN)/ruff format --check . || failed="$$failed ruff-format"; \
	echo "==> mypy (strict, browserfleet)"; $(BIN)/mypy || failed="$$failed mypy"; \
	echo "==> mypy (strict, benchmarks)"; $(BIN)/mypy -p benchmarks || failed="$$failed mypy-benchmarks"; \
	echo "==> mypy (strict, tests)"; $(BIN)/mypy --explicit-package-bases tests || failed="$$failed mypy-tests"; \
	echo "==> lint-imports"; $(BIN)/lint-imports || failed="$$failed lint-imports"; \
	if [ -n "$$failed" ]; then echo "lint FAILED:$$failed" >&2; exit 1; fi; \
	echo "lint OK"

bench: setup
	$(BIN)/python -m benchmarks.session_lifecycle $(LIFECYCLE_ARGS)
	$(BIN)/python -m benchmarks.cdp_gateway $(GATEWAY_ARGS)
	$(BIN)/python -m benchmarks.pool_create $(POOL_ARGS)
	$(BIN)/python -m benchmarks.scale $(SCALE_ARGS)
	$(BIN)/python -m benchmarks.egress_proxy $(EGRESS_ARGS)
	$(BIN)/python -m benchmarks.profile_archive $(ARCHIVE_ARGS)
	$(BIN)/python -m benchmarks.stealth $(STEALTH_ARGS)
	$(BIN)/python -m benchmarks.profiles $(PROFILES_ARGS)

clean:
	rm -rf build dist .eggs src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache \
	  htmlcov .coverage .coverage.* benchmarks/results
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(JS_DIR)/node_modules
