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

.PHONY: install demo test lint typecheck unit integration e2e template checkov lambda-python bench schema clean

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
	$(LAMBDA_VENV)/bin/python -m pip install -q -r src/requirements.txt 'boto3>=1.40,<2' pytest pytest-timeout jsonschema
	@touch $@

lambda-python: $(LAMBDA_VENV)/.installed-stamp
	PYTHONPATH=src $(LAMBDA_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit \
		--ignore=tests/unit/engine --ignore=tests/unit/cli

schema: install
	$(BIN)/python scripts/generate_schemas.py

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
