"""Operations: liveness, readiness, metrics, and the declared task kinds."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import protoform
from gateway.metrics import QUEUE_OLDEST, QUEUE_RUNNING, QUEUE_WAITING
from gateway.models import Health, KindList, Ready, error_responses

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive", response_model=Health)
async def healthz() -> dict:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Redis answers, its queues can be dispatched, and every backend has a SERVING replica",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "Not ready: the failing checks are false."}},
)
async def readyz(request: Request) -> JSONResponse:
    gw = request.app.state.gateway
    try:
        redis_ok = bool(await gw.store.redis.ping())
        queues_ok = await gw.store.groups_ready()
    except Exception:  # noqa: BLE001 - any failure means not ready
        redis_ok = queues_ok = False
    checks = {"redis": redis_ok, "queues": queues_ok, **(await gw.backends.ready())}
    ready = all(checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    gw = request.app.state.gateway
    if not gw.auth.metrics_public:
        gw.auth.require_admin(request)
    try:
        for kind_id, stats in (await gw.store.queue_stats()).items():
            kind, media = kind_id.split(":")
            QUEUE_WAITING.labels(kind, media).set(stats["waiting"])
            QUEUE_RUNNING.labels(kind, media).set(stats["running"])
            QUEUE_OLDEST.labels(kind, media).set(stats["oldest_waiting_s"])
    except Exception:  # noqa: BLE001 - metrics still answer without Redis
        pass
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/api/kinds",
    summary="The task kinds this gateway serves, with their options",
    response_model=KindList,
    responses=error_responses(401),
)
async def kinds(request: Request) -> JSONResponse:
    gw = request.app.state.gateway
    return JSONResponse(
        {
            "kinds": [
                {
                    "kind": k.kind,
                    "media": k.media,
                    "path": k.path,
                    "summary": k.summary,
                    "backend": k.backend.name,
                    "rpc": f"{k.backend.service_name}/{k.method}",
                    "options": {
                        name: protoform.openapi_schema(param)
                        for name, param in k.params.items()
                        if name not in k.preset
                    },
                    "private": k.private,
                }
                for k in gw.kinds
            ]
        }
    )
