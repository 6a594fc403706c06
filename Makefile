# crq: everything a newcomer needs is `make demo` and `make test`.
SHELL := /bin/bash
# sam build looks for python3.13 on PATH; pyenv only exposes it with this set.
export PYENV_VERSION := 3.11.7:3.12.1:3.13.0
export SAM_CLI_TELEMETRY := 0
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .venv-checkov
# Lambda runs python3.13: the deployed code's unit tests run there too, with only what it ships.
LAMBDA_VENV := .venv-lambda
LAMBDA_PYTHON ?= python3.13
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck unit integration e2e template checkov lambda-python bench schema clean lock runtime-python

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

# checkov pins its own dependency tree; it gets a venv of its own.
$(CHECKOV_VENV)/.installed-stamp:
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install -q 'checkov>=3.2,<4'
	@touch $@

demo: install
	$(BIN)/crq demo

test: install lint typecheck template checkov lambda-python
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

lint: install
	$(BIN)/ruff check src local tests scripts bench
	$(BIN)/ruff format --check src local tests scripts bench

typecheck: install
	$(BIN)/mypy src

unit: install
	$(BIN)/python -m pytest -q tests/unit

integration: install
	$(BIN)/python -m pytest -q tests/integration

e2e: install
	$(BIN)/python -m pytest -q tests/e2e

template: install
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --region us-east-1
	$(BIN)/sam build --parallel

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

lambda-python: $(LAMBDA_VENV)/.installed-stamp
	PYTHONPATH=src $(LAMBDA_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit \
		--ignore=tests/unit/engine --ignore=tests/unit/cli --ignore=tests/unit/sandbox

schema: install
	$(BIN)/python scripts/generate_schemas.py

bench: install runtime-python
	$(BIN)/sam build --parallel
	$(BIN)/python bench/run.py

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
