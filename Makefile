# crq: everything a newcomer needs is `make demo` and `make test`.
SHELL := /bin/bash
# sam build looks for python3.13 on PATH; pyenv only exposes it with this set.
export PYENV_VERSION := 3.11.7:3.12.1:3.13.0
export SAM_CLI_TELEMETRY := 0
# The first of these that runs and is Python >= 3.11 builds .venv (or: make PYTHON=/path/to/python).
# Oldest first: the dev tools check against 3.11, the floor; lambda-python covers 3.13.
PYTHON_CANDIDATES := python3.11 python3.12 python3.13 python3
# $(shell) does not see exported variables (make < 4.4): pyenv's shims need PYENV_VERSION.
find_python = $(firstword $(foreach p,$(1),$(shell PYENV_VERSION=$(PYENV_VERSION) \
	$(p) -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && echo $(p))))
ifeq ($(origin PYTHON),undefined)
PYTHON := $(call find_python,$(PYTHON_CANDIDATES))
endif
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .venv-checkov
# Lambda runs python3.13: the deployed code's unit tests run there too, with only what it ships.
LAMBDA_VENV := .venv-lambda
LAMBDA_PYTHON ?= python3.13
HAVE_LAMBDA_PYTHON := $(shell PYENV_VERSION=$(PYENV_VERSION) $(LAMBDA_PYTHON) -c '' >/dev/null 2>&1 && echo yes)
STAMP := $(VENV)/.installed-stamp

.PHONY: python python-check install demo test pytest lint typecheck unit integration e2e template checkov lambda-python bench schema clean lock runtime-python

install: $(STAMP)

# Which interpreter builds .venv, and which runs the Lambda-runtime tests.
python: python-check
	@echo "PYTHON=$(PYTHON) ($$($(PYTHON) -c 'import platform; print(platform.python_version())'))"
	@echo "LAMBDA_PYTHON=$(LAMBDA_PYTHON) ($(if $(HAVE_LAMBDA_PYTHON),found,not on PATH: sam build and its tests are skipped))"

# Says what to do instead of "python3.11: command not found".
python-check:
	@if [ -z "$(PYTHON)" ]; then \
		echo "error: crq needs Python 3.11 or newer, and none of $(PYTHON_CANDIDATES) on PATH is one." >&2; \
		echo "       Install one (python.org, pyenv, or your package manager), or name it: make PYTHON=/path/to/python3.12" >&2; \
		exit 2; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "error: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); crq needs 3.11 or newer." >&2; exit 2; }

$(STAMP): pyproject.toml | python-check
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

# checkov pins its own dependency tree; it gets a venv of its own.
$(CHECKOV_VENV)/.installed-stamp: | python-check
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install -q 'checkov>=3.2,<4'
	@touch $@

demo: install
	$(BIN)/crq demo

# The names of failed tests come last, where a CI log is read from.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=
PYTEST_LOG ?= .pytest-output.log
test: install lint typecheck template checkov lambda-python pytest

pytest: install
	@set -o pipefail; $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -q $(PYTEST_ARGS) 2>&1 \
		| tee $(PYTEST_LOG); status=$$?; \
	if [ $$status -ne 0 ]; then \
		echo "make test: pytest exited $$status; failed tests:"; \
		grep -E '^(FAILED|ERROR) |crashed while running' $(PYTEST_LOG) | sed 's/^/  /' \
			|| echo "  (no test named: pytest stopped before reporting, see above)"; \
	fi; exit $$status

lint: install
	$(BIN)/ruff check src local tests scripts bench
	$(BIN)/ruff format --check src local tests scripts bench
	$(BIN)/lint-imports  # the layers and who may import boto3: [tool.importlinter] in pyproject.toml

typecheck: install
	$(BIN)/mypy src local

unit: install
	$(BIN)/python -m pytest -q tests/unit

integration: install
	$(BIN)/python -m pytest -q tests/integration

e2e: install
	$(BIN)/python -m pytest -q tests/e2e

template: install
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --region us-east-1
ifeq ($(HAVE_LAMBDA_PYTHON),yes)
	$(BIN)/sam build --parallel
else
	@echo "skipped: sam build needs $(LAMBDA_PYTHON) (the functions' runtime) on PATH"
endif

checkov: $(CHECKOV_VENV)/.installed-stamp
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download -f template.yaml --framework cloudformation

$(LAMBDA_VENV)/.installed-stamp: src/requirements.txt
	@test -x $(LAMBDA_VENV)/bin/python || $(LAMBDA_PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/python -m pip install -q --upgrade pip
	$(LAMBDA_VENV)/bin/python -m pip install -q --require-hashes --no-deps -r src/requirements.txt
	$(LAMBDA_VENV)/bin/python -m pip install -q 'boto3>=1.40,<2' pytest pytest-timeout jsonschema
	@touch $@

# The functions' dependencies, resolved for Lambda (python3.13, arm64) and pinned with hashes;
# `sam build` installs exactly these (src/Makefile). Leaves out what the runtime ships (boto3 and
# its dependencies). Run after changing src/requirements.in, and to take upstream fixes.
RUNTIME_SHIPS := boto3 botocore s3transfer jmespath urllib3 python-dateutil six
lock: install
	cd src && ../$(BIN)/uv pip compile requirements.in --quiet --upgrade --generate-hashes \
		--python-version 3.13 --python-platform aarch64-manylinux_2_28 \
		$(addprefix --no-emit-package ,$(RUNTIME_SHIPS)) \
		--custom-compile-command "make lock" -o requirements.txt

# What the Lambda python3.13 runtime ships, and nothing else: `make bench` measures the built
# functions' cold start on it.
RUNTIME_VENV := .venv-runtime
$(RUNTIME_VENV)/.installed-stamp:
	@test -x $(RUNTIME_VENV)/bin/python || $(LAMBDA_PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install -q 'boto3>=1.40,<2'
	@touch $@

runtime-python: $(RUNTIME_VENV)/.installed-stamp

ifeq ($(HAVE_LAMBDA_PYTHON),yes)
lambda-python: $(LAMBDA_VENV)/.installed-stamp
	PYTHONPATH=src $(LAMBDA_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit \
		--ignore=tests/unit/engine --ignore=tests/unit/cli --ignore=tests/unit/sandbox
else
lambda-python:
	@echo "skipped: the unit tests under $(LAMBDA_PYTHON) (the Lambda runtime): $(LAMBDA_PYTHON) is not on PATH"
endif

schema: install
	$(BIN)/python scripts/generate_schemas.py

bench: install runtime-python
	$(BIN)/sam build --parallel
	$(BIN)/python bench/run.py

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache
