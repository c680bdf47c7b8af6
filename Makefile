# The task agent. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
# Use uv from PATH, else bootstrap a private copy from PyPI (only Python 3.11 is assumed).
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
export LANGGRAPH_STRICT_MSGPACK ?= true
export UV_PYTHON ?= 3.11

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

# `install` is what the server and the CLI need (`uv sync --no-dev`); `install-dev` adds the
# [dependency-groups] dev tools (tests, linters, Studio, benchmarks). --inexact: `make run` on a
# developer's venv keeps the dev tools rather than uninstalling them.
.PHONY: install
install: $(UV) ## Install what the server and the CLI need into .venv (no dev tools)
	$(UV) sync --frozen --no-dev --inexact

.PHONY: install-dev
install-dev: $(UV) ## Install everything: the server plus the test, lint and Studio tools
	$(UV) sync --frozen

.PHONY: run
run: install ## Start the server on http://127.0.0.1:8000 (HOST/PORT override)
	$(UV) run --frozen --no-dev taskagent serve

.PHONY: run-pg
run-pg: install ## PostgreSQL (Debian package) + 2 replicas behind a round-robin balancer on :8000; docs/SCALING.md
	$(UV) run --frozen --no-dev python -m scripts.run_pg

.PHONY: deploy-check
deploy-check: $(UV) ## deploy/compose.yaml under podman: PostgreSQL + 2 replicas + nginx, chat turns, kill a replica, clean up; docs/SCALING.md
	UV=$(UV) bash deploy/check.sh

.PHONY: chat
chat: install ## Chat with the agent in the terminal
	$(UV) run --frozen --no-dev taskagent chat

.PHONY: studio
studio: install-dev ## Serve the graph to LangGraph Studio with `langgraph dev` (http://127.0.0.1:2024)
	$(UV) run --frozen langgraph dev --host 127.0.0.1 --port $${STUDIO_PORT:-2024}

.PHONY: lint
lint: install-dev ## Ruff (lint + format check), mypy --strict and the import-linter layering contracts
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy .
	$(UV) run --frozen lint-imports

.PHONY: format
format: install-dev ## Format and auto-fix with ruff
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

.PHONY: test
test: lint ## The whole suite: lint, type check, unit and integration tests
	$(UV) run --frozen pytest -q

# The agent-protocol and /chat suites with every server replaced by two replicas on a new
# PostgreSQL database behind a round-robin balancer (tests/integration/conftest.py `serve`).
PG_SUITES ?= tests/integration/test_chat_api.py tests/integration/test_sdk.py \
	tests/integration/test_chat_stream.py tests/integration/test_thread_join_stream.py \
	tests/integration/test_thread_stream.py tests/integration/test_assistants.py \
	tests/integration/test_store_api.py tests/integration/test_hitl.py \
	tests/integration/test_chat_threads.py tests/integration/test_crons_api.py \
	tests/integration/test_threads_api.py tests/integration/test_any_graph.py \
	tests/integration/test_auth.py tests/integration/test_disconnect.py tests/clients
.PHONY: test-pg
test-pg: install-dev ## The protocol and /chat suites against 2 replicas on PostgreSQL; docs/SCALING.md
	TASKAGENT_TEST_BACKEND=postgres $(UV) run --frozen pytest -q $(PG_SUITES)

.PHONY: e2e-ui
e2e-ui: install-dev ## agent-chat-ui built from its source, against the server in Chromium (first run ≈5 min); docs/E2E_UI.md
	TASKAGENT_E2E_UI=1 $(UV) run --frozen pytest -q tests/e2e_ui

.PHONY: bench
bench: install-dev ## Benchmarks (≈30 min) → docs/BENCHMARKS.md, docs/bench-replicas.md, docs/bench-replay.md; `.venv/bin/python -m bench --quick` for a quick look
	$(UV) run --frozen python -m bench --wait-for-load 600
	$(UV) run --frozen python -m bench.replicas --out docs/bench-replicas.md
	$(UV) run --frozen python -m bench.replay --out docs/bench-replay.md

.PHONY: faults
faults: install-dev ## Fault injection (≈15–20 min) → docs/RELIABILITY.md; `.venv/bin/python -m faults --quick` for the short set
	$(UV) run --frozen python -m faults

# The eval: offline it runs the app in process (about a minute); with a model, a fresh server
# subprocess per case, started while the previous case runs.
MODEL_BASE_URL ?=
OLLAMA_URL ?=
MODEL ?=
EVAL_ARGS ?=
.PHONY: eval
eval: install-dev ## Outcome eval judged from the database; on a model: MODEL_BASE_URL=… (or OLLAMA_URL=…) MODEL=…
	$(UV) run --frozen python -m evals $(if $(MODEL_BASE_URL),--model-base-url $(MODEL_BASE_URL),$(if $(OLLAMA_URL),--ollama $(OLLAMA_URL),--in-process)) $(if $(MODEL),--model $(MODEL)) $(EVAL_ARGS)

.PHONY: readme-check
readme-check: ## Run the README's commands in a fresh clone (scratch dir, offline; ≈2 min with a uv cache)
	$(PYTHON) scripts/readme_check.py

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-13s %s\n", $$1, $$2}'
