# `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
PYTEST := $(BIN)/python -m pytest
SHELL_SCRIPTS := $(shell git ls-files '*.sh' .ci/run 2>/dev/null || find . -name '*.sh' -not -path './.venv/*')

.PHONY: help demo test lint unit functional container bench bench-train bench-serve train-local serve-local clean lock

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The locks (`make lock`) pin every package with its hashes: pip installs exactly what they list.
$(VENV)/.runtime: container/requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -q --require-hashes -r container/requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/python -m pip install -q --require-hashes -r requirements-dev.txt
	touch $@

# uv alone, at the dev lock's version and hashes (it has no dependencies): locking needs no more.
$(BIN)/uv: | $(BIN)/python
	sed -n '/^uv==/,/[^\\]$$/p' requirements-dev.txt \
		| $(BIN)/python -m pip install -q --require-hashes --no-deps -r /dev/stdin

lock: $(BIN)/uv ## Pin container/requirements.in and requirements-dev.in, with hashes (UPGRADE=1: newest)
	UV=$(BIN)/uv scripts/lock.sh

EXAMPLES := $(sort $(patsubst examples/%/predictor.py,%,$(wildcard examples/*/predictor.py)))
EXAMPLE_DIR := $(CURDIR)/examples/$(EXAMPLE)

demo: ## Train, serve, predict a payload, stop, natively (no Docker, no AWS); EXAMPLE=<name>: one of examples/
	@if [[ -n "$(EXAMPLE)" && ! -f "$(EXAMPLE_DIR)/predictor.py" ]]; then \
		echo "error: no example EXAMPLE=$(EXAMPLE); the examples are: $(EXAMPLES)" >&2; exit 2; fi
	scripts/install-system-packages.sh demo
	$(MAKE) --no-print-directory $(VENV)/.runtime
ifeq ($(EXAMPLE),)
	local_test/demo.sh
else
# An example's own packages are in the dev lock, at the versions its tests ran with.
	if grep -qv '^[[:space:]]*\(#\|$$\)' "$(EXAMPLE_DIR)/requirements.txt" 2>/dev/null; then \
		$(MAKE) --no-print-directory $(VENV)/.dev; fi
	TEST_DIR="$(EXAMPLE_DIR)/test_dir" PAYLOAD="$(EXAMPLE_DIR)/payload.csv" \
		BYOC_PREDICTOR="$(EXAMPLE_DIR)/predictor.py" local_test/demo.sh
endif

test: ## Install everything the tests need, then lint and run every test tier
	scripts/install-system-packages.sh test
	$(MAKE) --no-print-directory $(VENV)/.dev
	$(MAKE) --no-print-directory lint unit functional container

lint: $(VENV)/.dev ## ruff, shellcheck, hadolint, nginx -t and gunicorn --check-config
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	shellcheck $(SHELL_SCRIPTS)
	$(BIN)/hadolint container/Dockerfile
	scripts/check-serving-config.sh

unit: $(VENV)/.dev ## Unit tests
	$(PYTEST) tests/unit

functional: $(VENV)/.dev ## Functional tests: the real programs as processes
	$(PYTEST) tests/functional

.PHONY: notebook
notebook: $(VENV)/.dev ## Re-run the walkthrough notebook locally and save its outputs in place
	scripts/install-system-packages.sh demo
	$(BIN)/python notebooks/run_notebook.py

container: $(VENV)/.dev ## Container tests: the real image on a real Docker engine
	$(PYTEST) tests/container

bench: $(VENV)/.dev ## Benchmarks (prints tables; asserts nothing)
	$(BIN)/python benchmarks/train_read.py
	$(BIN)/python benchmarks/serve_bench.py

bench-train: $(VENV)/.dev ## Training benchmark: train's reader against pandas.read_csv + concat
	$(BIN)/python benchmarks/train_read.py

bench-serve: $(VENV)/.dev ## Serving benchmark: wrk against serve, nginx alone and the classic predictor
	$(BIN)/python benchmarks/serve_bench.py

train-local: $(VENV)/.runtime ## Train natively on local_test/test_dir
	local_test/train_local.sh

serve-local: $(VENV)/.runtime ## Serve local_test/test_dir/model natively on port PORT (default 8080)
	local_test/serve_local.sh

clean: ## Remove the virtual environment and generated files
	rm -rf $(VENV) .pytest_cache .ruff_cache local_test/test_dir/model local_test/test_dir/output \
		examples/*/test_dir*/model examples/*/test_dir*/output
