# Flotilla: `make up` starts a local cluster, `make test` runs every test tier.
VENV   := .venv
PY     := $(VENV)/bin/python
PROTOS := $(shell find protos -name '*.proto' | sort)

.PHONY: deps up down test test-unit test-integration test-e2e lint protos verify-protos bench

deps:
	./scripts/bootstrap.sh

up: deps
	$(PY) -m flotctl.main lab up --nodes 3 --demo deploy/demo.yaml

down: deps
	$(PY) -m flotctl.main lab down

test: deps
	$(PY) -m pytest -q -p no:cacheprovider tests/unit tests/integration tests/e2e

test-unit: deps
	$(PY) -m pytest -q tests/unit

test-integration: deps
	$(PY) -m pytest -q tests/integration

test-e2e: deps
	$(PY) -m pytest -q tests/e2e

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy master netproxy flotctl deploy node_agent bench protos/codec.py protos/resources.py
	$(VENV)/bin/lint-imports

protos: deps
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)

verify-protos: deps
	./scripts/verify-protos.sh

bench: deps
	$(PY) bench/api.py
	$(PY) bench/scheduler.py
	$(PY) bench/pods.py
	$(PY) bench/proxy.py
	$(PY) bench/churn.py
