# omnibot: the obvious targets. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# A pinned uv of our own, so every machine resolves and installs the same way.
UV := .tools/bin/uv
UV_VERSION := 0.13.9
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never

.PHONY: help install run sandbox demo test test-fast lint typecheck format bench image-check clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'

$(BIN)/omnibot: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

install: $(BIN)/omnibot ## create .venv with everything, including .venv/bin/omnibot

run: install ## run omnibot (ingress, dialog, egress in one process) plus the Omnidesk sandbox
	@scripts/dev-run

demo: install ## with `make run` going: set up an agent and a channel against the sandbox, send a message
	@scripts/demo

test: install ## the whole test suite (starts what it needs)
	@scripts/test

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services bench tests

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## benchmarks (scripts, not tests); see "Performance" in the README
	$(BIN)/python bench/engine_bench.py
	$(BIN)/python -m bench.pipeline_bench

image-check: install ## build the image (podman or docker) and run every role from it, hardened, through a conversation
	@scripts/image-check

clean:
	rm -rf .venv .tools .omnibot .mypy_cache .ruff_cache .pytest_cache
