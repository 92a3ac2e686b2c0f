"""The seed's Celery app: Redis as broker and result backend, base64 uploads.

Worker (what `bench.vs_seed` starts, one process per core):
    SEED_REDIS_URL=redis://127.0.0.1:PORT/0 SEED_OBJECT_MODEL=path.pt \\
        python -m celery -A bench.seed.tasks worker -P prefork -c CORES

Each pool process loads both models once, when it starts (worker_process_init),
and warms them; PyTorch runs one intra-op thread per process, so the pool's
processes do not fight over the cores (one process per core).
"""

from __future__ import annotations

import base64
import os
from typing import Any

import numpy as np
from celery import Celery
from celery.signals import worker_process_init

from bench.seed import calls

REDIS_URL = os.environ.get("SEED_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("seed", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    # Loading torch, ultralytics and dlib in a fresh pool process takes longer than
    # the 4 s Celery otherwise waits for it before killing it.
    worker_proc_alive_timeout=120,
    # Celery's defaults otherwise: prefetch multiplier 4, acks early, results kept 1 day.
)

_objects: calls.Objects | None = None


@worker_process_init.connect
def load_models(**_: Any) -> None:
    global _objects
    blank = np.zeros((64, 64, 3), np.uint8)
    calls.faces(blank)  # imports face_recognition: loads dlib's models
    _objects = calls.Objects(os.environ["SEED_OBJECT_MODEL"], backend="pytorch", threads=1)


@app.task(name="seed.detect_faces")
def detect_faces(image_b64: str) -> dict[str, Any]:
    return calls.faces(calls.decode(base64.b64decode(image_b64)))


@app.task(name="seed.detect_objects")
def detect_objects(image_b64: str) -> dict[str, Any]:
    assert _objects is not None, "models load in worker_process_init"
    return _objects(calls.decode(base64.b64decode(image_b64)))
