# Percept — every verb a person or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON_SYS ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
BUF := node_modules/.bin/buf
PROTOS := $(shell find protos -name '*.proto' | sort)
REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=

export PYTHONPATH := $(CURDIR):$(CURDIR)/gen

.PHONY: help setup proto proto-check lint test test-unit test-integration run run-face run-object bench bench-face bench-object bench-gateway bench-scale bench-gallery test-model redis clean

help: ## list the verbs
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install everything (fast when already done)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check 'setuptools<81' wheel
	$(PIP) install -q --disable-pip-version-check -c constraints.txt -e '.[face,object,gateway,dev]'
	# face_recognition's metadata wants dlib (a source build); dlib-bin gives it prebuilt.
	$(PIP) install -q --disable-pip-version-check -c constraints.txt --no-deps face_recognition==1.3.0
	# Code runs from the checkout: put the repo root and gen/ on the venv's path.
	$(PY) -c 'import sys, sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()["purelib"], "percept-paths.pth").write_text("\n".join(sys.argv[1:]) + "\n")' "$(CURDIR)" "$(CURDIR)/gen"
	touch $(STAMP)

$(BUF): package.json
	npm install --no-audit --no-fund --silent
	touch $(BUF)

proto: $(STAMP) ## regenerate gen/ from protos/
	rm -rf gen/percept
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=gen --grpc_python_out=gen --pyi_out=gen $(PROTOS)

proto-check: $(STAMP) ## fail when gen/ is stale against protos/
	$(PY) -m pytest -q tests/unit/test_generated_code.py

lint: $(STAMP) $(BUF) ## ruff + buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(BUF) lint

redis: ## make sure a Redis answers on REDIS_URL (starts a local one if not)
	@$(PY) scripts/ensure_redis.py "$(REDIS_URL)"

test: $(STAMP) ## run every test (unit + integration with real servers and Redis)
	$(MAKE) --no-print-directory redis
	YOLO_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## fast tests only, no servers
	YOLO_OFFLINE=1 $(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP) ## tests against real servers
	$(MAKE) --no-print-directory redis
	YOLO_OFFLINE=1 $(PY) -m pytest tests/integration $(PYTEST_ARGS)

FACE_REPLICAS ?=
OBJECT_REPLICAS ?=

run: $(STAMP) ## start everything: Redis if needed, face + object replicas, gateway (FACE_REPLICAS=N OBJECT_REPLICAS=M)
	@$(PY) scripts/ensure_redis.py "$(REDIS_URL)"
	REDIS_URL="$(REDIS_URL)" FACE_REPLICAS="$(FACE_REPLICAS)" OBJECT_REPLICAS="$(OBJECT_REPLICAS)" $(PY) scripts/run_stack.py

run-face: $(STAMP) ## start one face service on FACE_PORT (default 50051)
	$(PY) -m face_service

run-object: $(STAMP) ## start one object service on OBJECT_PORT (default 50052) with OBJECT_MODEL
	$(PY) -m object_service

test-model: $(STAMP) ## retrain the demo detector object_service/models/shapes-yolo.pt (CPU, minutes)
	$(PY) scripts/train_test_model.py

bench: bench-face bench-object bench-gateway bench-scale bench-gallery ## run every benchmark (prints ratios)

bench-face: $(STAMP) ## face benchmarks: in-process vs gRPC, 1 vs all cores, video
	$(PY) -m bench.face_bench

bench-object: $(STAMP) ## object benchmarks: in-process vs gRPC, ONNX vs PyTorch, video, batch size
	YOLO_OFFLINE=1 $(PY) -m bench.object_bench

bench-gateway: $(STAMP) ## gateway benchmarks: submit latency, throughput vs direct gRPC
	$(MAKE) --no-print-directory redis
	$(PY) -m bench.gateway_bench

bench-scale: $(STAMP) ## 1 vs 2 replicas through the gateway, one core each
	$(MAKE) --no-print-directory redis
	YOLO_OFFLINE=1 $(PY) -m bench.scale_bench

bench-gallery: $(STAMP) ## face gallery: identify latency 10k/100k/1M, recall, memory, load time, enroll rate (PostgreSQL)
	$(PY) -m bench.gallery_bench

clean: ## remove the venv and caches
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache
