"""Operations: liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.deps import BackendsDep, StoreDep
from gateway.metrics import QUEUE_OLDEST, QUEUE_RUNNING, QUEUE_WAITING

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis answers and every backend has a SERVING replica")
async def readyz(store: StoreDep, backends: BackendsDep) -> JSONResponse:
    try:
        redis_ok = bool(await store.redis.ping())
    except Exception:  # noqa: BLE001 - any failure means not ready
        redis_ok = False
    checks = {"redis": redis_ok, **(await backends.ready())}
    ready = all(checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(store: StoreDep) -> Response:
    try:
        for kind, stats in (await store.queue_stats()).items():
            QUEUE_WAITING.labels(kind).set(stats["waiting"])
            QUEUE_RUNNING.labels(kind).set(stats["running"])
            QUEUE_OLDEST.labels(kind).set(stats["oldest_waiting_s"])
    except Exception:  # noqa: BLE001 - metrics still answer without Redis
        pass
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
