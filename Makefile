# Percept — every verb a person or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON_SYS ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
BUF := node_modules/.bin/buf
TS := clients/typescript
TS_MODULES := $(TS)/node_modules/.installed
PROTOS := $(shell find protos -name '*.proto' | sort)
REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=

export PYTHONPATH := $(CURDIR):$(CURDIR)/gen

.PHONY: tools console-screenshots certs sdk-wheel help setup proto proto-check ts-client ts-check test-ts lint test test-unit test-integration run run-face run-object bench bench-face bench-object bench-gateway bench-scale bench-vs-seed bench-gallery bench-enroll bench-memory bench-burst bench-queue bench-tracking test-model redis samples clean

help: ## list the verbs
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install everything (fast when already done)

$(STAMP): pyproject.toml constraints.txt clients/python/pyproject.toml clients/python/setup.py
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check 'setuptools<81' wheel
	$(PIP) install -q --disable-pip-version-check -c constraints.txt -e '.[face,object,gateway,dev]'
	# The Python SDK and its `percept` command, editable; its dependencies come from
	# clients/python/pyproject.toml, their exact versions from constraints.txt.
	$(PIP) install -q --disable-pip-version-check -c constraints.txt -e clients/python
	# face_recognition's metadata wants dlib (a source build); dlib-bin gives it prebuilt.
	$(PIP) install -q --disable-pip-version-check -c constraints.txt --no-deps face_recognition==1.3.0
	# Code runs from the checkout: put the repo root and gen/ on the venv's path
	# (not when .venv is a link to another checkout's venv: that one keeps its own).
	test -L $(VENV) || $(PY) -c 'import sys, sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()["purelib"], "percept-paths.pth").write_text("\n".join(sys.argv[1:]) + "\n")' "$(CURDIR)" "$(CURDIR)/gen"
	touch $(STAMP)

$(BUF): package.json
	npm install --no-audit --no-fund --silent
	touch $(BUF)

proto: $(STAMP) ## regenerate gen/ from protos/
	rm -rf gen/percept
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=gen --grpc_python_out=gen --pyi_out=gen \
		--include_source_info --descriptor_set_out=gen/descriptors.binpb $(PROTOS)

proto-check: $(STAMP) ## fail when gen/ is stale against protos/
	$(PY) -m pytest -q tests/unit/test_generated_code.py

$(TS_MODULES): $(TS)/package.json $(TS)/package-lock.json
	cd $(TS) && npm ci --no-audit --no-fund --silent
	touch $@

ts-client: $(TS_MODULES) ## regenerate clients/typescript/src/gen from protos/, type-check, build dist/
	cd $(TS) && rm -rf src/gen dist && node_modules/.bin/buf generate && \
	node_modules/.bin/tsc --noEmit && node_modules/.bin/tsc -p tsconfig.build.json

ts-check: $(TS_MODULES) ## fail when clients/typescript/src/gen is stale against protos/
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cd $(TS) && \
	node_modules/.bin/buf generate -o "$$tmp" && \
	diff -r "$$tmp/src/gen" src/gen >&2 || \
	{ echo "clients/typescript/src/gen is stale against protos/: run \`make ts-client\`" >&2; exit 1; }

test-ts: $(STAMP) $(TS_MODULES) ## TypeScript client: tsc, then node --test against real face and object servers
	cd $(TS) && rm -rf build && node_modules/.bin/tsc && node --test build/test/*.test.js

lint: $(STAMP) $(BUF) ## ruff, the layering contracts (lint-imports, pyproject.toml), buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo
	$(BUF) lint

redis: ## make sure a Redis answers on REDIS_URL (starts a local one if not)
	@$(PY) scripts/ensure_redis.py "$(REDIS_URL)"

tools: $(STAMP) ## chromium (the console's browser tests), redis-sentinel (the failover test), promtool (alert rules), mosquitto (MQTT test), GStreamer's RTSP server and ffmpeg (live sources' tests), from Debian packages, when missing
	@$(PY) scripts/ensure_tools.py chromium redis-sentinel promtool mosquitto rtsp ffmpeg

test: $(STAMP) ## run every test (unit + integration with real servers and Redis, the TypeScript client's)
	$(MAKE) --no-print-directory redis
	$(MAKE) --no-print-directory tools
	$(MAKE) --no-print-directory ts-check
	YOLO_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-ts

test-unit: $(STAMP) ## fast tests only, no servers
	$(MAKE) --no-print-directory tools
	YOLO_OFFLINE=1 $(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP) ## tests against real servers
	$(MAKE) --no-print-directory redis
	$(MAKE) --no-print-directory tools
	YOLO_OFFLINE=1 $(PY) -m pytest tests/integration $(PYTEST_ARGS)

console-screenshots: $(STAMP) ## redo docs/console-*.png: the console's browser tests against a real stack
	$(MAKE) --no-print-directory tools
	CONSOLE_SCREENSHOTS=$(CURDIR)/docs YOLO_OFFLINE=1 $(PY) -m pytest -q tests/integration/test_console.py tests/integration/test_console_webhooks.py tests/integration/test_toy_backend.py $(PYTEST_ARGS)

FACE_REPLICAS ?=
OBJECT_REPLICAS ?=

run: $(STAMP) ## start everything: its own Redis (or REDIS_URL), face + object replicas, gateway (FACE_REPLICAS=N OBJECT_REPLICAS=M)
ifneq ($(origin REDIS_URL),file)
	@$(PY) scripts/ensure_redis.py "$(REDIS_URL)"
	REDIS_URL="$(REDIS_URL)" FACE_REPLICAS="$(FACE_REPLICAS)" OBJECT_REPLICAS="$(OBJECT_REPLICAS)" $(PY) scripts/run_stack.py
else
	FACE_REPLICAS="$(FACE_REPLICAS)" OBJECT_REPLICAS="$(OBJECT_REPLICAS)" $(PY) scripts/run_stack.py
endif

samples: $(STAMP) ## write the README's sample images and videos into samples/ (only those missing)
	$(PY) scripts/make_samples.py

run-face: $(STAMP) ## start one face service on FACE_PORT (default 50051)
	$(PY) -m face_service

run-object: $(STAMP) ## start one object service on OBJECT_PORT (default 50052) with OBJECT_MODEL
	$(PY) -m object_service

test-model: $(STAMP) ## retrain the demo detector object_service/models/shapes-yolo.pt (CPU, minutes)
	$(PY) scripts/train_test_model.py

bench: bench-face bench-object bench-gateway bench-scale bench-vs-seed bench-gallery bench-enroll bench-queue bench-memory bench-burst bench-tracking bench-webhooks bench-sources ## run every benchmark (prints ratios)

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

bench-memory: $(STAMP) ## RSS of every process of a `make run` stack after a few calls of each kind (the README's figures)
	YOLO_OFFLINE=1 $(PY) -m bench.stack_memory

sdk-wheel: $(STAMP) ## build the SDK's wheel (generated gRPC code included) into dist/
	$(PIP) wheel -q --disable-pip-version-check --no-deps -w dist clients/python

BENCH_ARGS ?=

bench-vs-seed: $(STAMP) ## default `make run` vs the seed's Flask + Celery + Redis design, same cores (BENCH_ARGS=--quick)
	@# The seed's packages are a bench-only extra: `make setup` never installs them.
	@$(PY) -c 'import celery, flask, gunicorn, psutil' 2>/dev/null || $(PIP) install -q --disable-pip-version-check -c constraints.txt -e '.[bench]'
	@command -v redis-server >/dev/null || $(PY) -c 'import sys; sys.path.insert(0, "scripts"); import ensure_redis; ensure_redis.install_redis()'
	YOLO_OFFLINE=1 FACE_REPLICAS="$(FACE_REPLICAS)" OBJECT_REPLICAS="$(OBJECT_REPLICAS)" $(PY) -m bench.vs_seed $(BENCH_ARGS)

bench-gallery: $(STAMP) ## face gallery: identify latency 10k/100k/1M, recall, memory, load time, enroll rate (PostgreSQL)
	$(PY) -m bench.gallery_bench

bench-enroll: $(STAMP) ## face enrollment end to end: gRPC and REST vs detection alone, SQLite and PostgreSQL
	$(MAKE) --no-print-directory redis
	$(PY) -m bench.enroll_bench

BASE ?= 3f8bf07

.PHONY: bench-before-after
bench-before-after: $(STAMP) ## this tree vs BASE (default 3f8bf07), side by side: submit latency, tiny-task rate, identify latency
	$(MAKE) --no-print-directory redis
	YOLO_OFFLINE=1 $(PY) -m bench.before_after --base $(BASE) $(BENCH_ARGS)

.PHONY: bench-webhooks
bench-webhooks: $(STAMP) ## webhooks: deliveries/s from one process, event -> delivery delay, task rate with 3 subscriptions vs none
	YOLO_OFFLINE=1 $(PY) -m bench.webhook_bench $(BENCH_ARGS)

.PHONY: bench-sources
bench-sources: $(STAMP) ## live sources: 5 fps sources one worker holds, saturated fps vs in-process, latency p95, RSS over a soak
	$(MAKE) --no-print-directory redis
	YOLO_OFFLINE=1 $(PY) -m bench.sources_bench $(BENCH_ARGS)

bench-queue: $(STAMP) ## the queue figures' read (overview, /metrics): empty vs 100,000 queued tasks
	$(MAKE) --no-print-directory redis
	$(PY) -m bench.queue_stats_bench

bench-burst: $(STAMP) ## 2 x 40 uploads near the size limit at once: gateway RSS idle/peak/after, Redis vs maxmemory, a small request's p50/p99
	YOLO_OFFLINE=1 $(PY) -m bench.burst_bench $(BENCH_ARGS)

.PHONY: images test-compose
PERCEPT_WHEELHOUSE ?=

images: ## build percept/gateway, face, object (one at a time, build cache; PERCEPT_WHEELHOUSE=DIR: CPU torch from DIR)
	PYTHON=$(PY) PERCEPT_WHEELHOUSE="$(PERCEPT_WHEELHOUSE)" scripts/build_images.sh

test-compose: $(STAMP) images ## docker compose for real: 2 face + 2 object replicas, REST, gRPC, a replica killed (not in `make test`)
	PERCEPT_COMPOSE_TEST=1 YOLO_OFFLINE=1 $(PY) -m pytest -v -s --timeout 3600 tests/compose $(PYTEST_ARGS)

bench-tracking: $(STAMP) ## tracking: CPU per frame, frames/s on vs off, vs model.track, gallery searches per frame
	YOLO_OFFLINE=1 $(PY) -m bench.tracking_bench

certs: $(STAMP) ## make the gRPC CA, certificates and token compose and Kubernetes mount (deploy/k8s/secrets/)
	$(PY) scripts/make_certs.py

clean: ## remove the venv and caches
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache .import_linter_cache $(TS)/node_modules $(TS)/build dist clients/python/build clients/python/*.egg-info
