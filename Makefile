# Two commands on a fresh machine: `make run` serves the agent, `make test` runs the tests.
# Both create the environment from the committed lock file first (uv; bootstrapped with pip
# when missing). uv uses this machine's Python 3.11, never a downloaded one.

SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
# Compile .pyc files at install: a worker process then starts in about half the time on
# machines that do not write bytecode caches themselves.
export UV_COMPILE_BYTECODE := 1
# Trust the system certificate store (where a proxy or a company CA lives), as pip does.
export UV_SYSTEM_CERTS ?= 1

# The JavaScript clients the tests drive (`make test` installs them; see below).
JS_CLIENTS := tests/clients/js

UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := .tools/bin/uv
endif

.PHONY: run test check static format sync clean register bench bench-quick bench-state bench-tracing bench-events bench-follow bench-hostile soak chromium screenshots

# The offline model pauses between tokens here so streaming is visible in a terminal.
run: export OFFLINE_TOKEN_DELAY_MS ?= 30
run: .venv/.synced
	$(UV) run --frozen --no-sync agent-server $(ARGS)

test: .venv/.synced chromium $(JS_CLIENTS)/node_modules/.installed
	$(UV) run --frozen --no-sync pytest $(PYTEST_ARGS)

# The chat page's tests drive Debian's Chromium through Playwright. Installed when missing
# (needs root, as in CI); a no-op when it is there.
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing; the page tests will be skipped (run: sudo apt-get install chromium)"; \
	  fi; \
	}

# Format check, lint, types, layering, tests.
check: static test

static: .venv/.synced
	$(UV) run --frozen --no-sync ruff format --check .
	$(UV) run --frozen --no-sync ruff check .
	$(UV) run --frozen --no-sync mypy
	$(UV) run --frozen --no-sync lint-imports

format: .venv/.synced
	$(UV) run --frozen --no-sync ruff format .
	$(UV) run --frozen --no-sync ruff check --fix .

sync: .venv/.synced

.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	touch $@

# The JavaScript clients the tests drive through Node.js (tests/clients/js): installed from
# their lock file, again only when it changes. Without npm their tests skip (CI fails them).
$(JS_CLIENTS)/node_modules/.installed: $(JS_CLIENTS)/package-lock.json $(JS_CLIENTS)/package.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $(JS_CLIENTS) --no-audit --no-fund --ignore-scripts --loglevel=error \
		&& touch $@; \
	else \
		echo "npm is not installed: the JavaScript client tests will be skipped"; \
	fi

# uv is not on this machine: install the pinned release into a private virtualenv with pip.
.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# Side by side with MLflow's AgentServer (bench/README.md): about 25 minutes; bench-quick
# about 7. The bench group is installed for the run (and removed by the next `make test`).
bench: .venv/.synced
	$(UV) run --frozen --group bench python -m bench.run $(BENCH_ARGS)

bench-quick: .venv/.synced
	$(UV) run --frozen --group bench python -m bench.run --quick $(BENCH_ARGS)

# The production install, what `app.yaml` runs: the locked dependencies without the dev group,
# exactly (nothing else installed), in a virtualenv of its own so that `.venv` keeps its
# test tools. The benches below measure it.
PROD_VENV := .venv-prod
PROD := UV_PROJECT_ENVIRONMENT=$(PROD_VENV) $(UV) run --frozen --no-sync

$(PROD_VENV)/.synced: uv.lock pyproject.toml | $(UV)
	UV_PROJECT_ENVIRONMENT=$(PROD_VENV) $(UV) sync --frozen --no-dev --exact
	touch $@

# What a stored turn adds over a stateless one (SQLite, PostgreSQL), on the production install.
bench-state: $(PROD_VENV)/.synced
	$(PROD) python -m bench.state $(BENCH_ARGS)

# What keeping a stream for replay costs per event, and how fast a kept stream is replayed.
bench-events: $(PROD_VENV)/.synced
	$(PROD) python -m bench.events $(BENCH_ARGS)

# How far behind a stream of a background run on another instance is (PostgreSQL, ~1 minute).
bench-follow: $(PROD_VENV)/.synced
	$(PROD) python -m bench.follow $(BENCH_ARGS)

# What tracing every request costs (off / exporter on a spare core / all on one core) and what
# return_trace adds, same-run A/B on the production install (about 4 minutes).
bench-tracing: $(PROD_VENV)/.synced
	$(PROD) python -m bench.tracing $(BENCH_ARGS)

# The longest event-loop stall any one hostile request causes (about 3 minutes).
bench-hostile: .venv/.synced
	$(UV) run --frozen --group bench python -m bench.hostile $(BENCH_ARGS)

# A fixed-rate load for a set time against two gunicorn workers: errors, latency, memory.
soak: .venv/.synced
	$(UV) run --frozen --group bench python -m bench.soak $(SOAK_ARGS)

# The chat page at desktop and phone width, for the README (docs/ui-*.png).
screenshots: .venv/.synced chromium
	$(UV) run --frozen --no-sync python -m tests.ui_screenshots

clean:
	rm -rf .venv $(PROD_VENV) .tools .pytest_cache .mypy_cache .ruff_cache $(JS_CLIENTS)/node_modules

# Register this version of the agent in Unity Catalog (UC_MODEL_NAME=catalog.schema.model).
register: .venv/.synced
	$(UV) run --frozen --group register agent-register
