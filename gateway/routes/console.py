"""The console's APIs: the overview's numbers (/api/stats), the replicas the
monitor sees (/api/replicas) and a task's uploaded image (/api/task/{id}/input).
The console's page itself is static (gateway/console/static), served at /console/."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from gateway import stats
from gateway.console.models import ReplicaList, Stats
from gateway.declare import backends_of
from gateway.errors import ApiError
from gateway.models import ascii_int, error_responses
from gateway.replicas import lease_holder, read_replicas
from percept_runtime import imaging

router = APIRouter(tags=["console"], responses=error_responses(401, 503))

STATS_CACHE_S = 1.0  # many open consoles cost Redis one read a second
_cache: dict[tuple[int, int], tuple[float, dict]] = {}


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    # Relative, so it stays under a reverse proxy's path prefix.
    return RedirectResponse("console/", status_code=307)


@router.get(
    "/api/stats",
    summary="The console's overview: live counts and per-minute statistics of every task kind",
    response_model=Stats,
    responses=error_responses(403, 422),
)
async def get_stats(
    request: Request,
    minutes: Annotated[
        ascii_int(ge=5, le=1440), Query(description="Minutes of per-minute series.")
    ] = 60,
) -> JSONResponse:
    gw = request.app.state.gateway
    gw.auth.require_admin(request)
    hit = _cache.get((id(gw), minutes))
    if hit is not None and time.monotonic() - hit[0] < STATS_CACHE_S:
        return JSONResponse(hit[1])
    body = await overview(gw, minutes)
    _cache[(id(gw), minutes)] = (time.monotonic(), body)
    return JSONResponse(body)


async def overview(gw, minutes: int) -> dict[str, Any]:
    """Every declared kind: queue now, and the last 5 and 60 minutes."""
    buckets = await gw.store.stats(max(minutes, 60))
    queues = await gw.store.queue_stats()
    counts = await gw.store.counts()
    kinds = []
    for kind in gw.kinds:
        rows = buckets.get(kind.id, [])
        queue = queues.get(kind.id, {})
        kinds.append(
            {
                "id": kind.id,
                "kind": kind.kind,
                "media": kind.media,
                "backend": kind.backend.name,
                "queued": int(queue.get("waiting", 0)),
                "running": int(queue.get("running", 0)),
                "oldest_waiting_s": float(queue.get("oldest_waiting_s", 0.0)),
                "last_5m": stats.summarize(rows[-5:]),
                "last_60m": stats.summarize(rows[-60:]),
                "series": stats.series(rows[-minutes:]),
            }
        )
    return {"time": time.time(), "minutes": minutes, "counts": counts, "kinds": kinds}


@router.get(
    "/api/replicas",
    summary="Every face and object replica the gateway can reach, with health and load",
    response_model=ReplicaList,
    responses=error_responses(403),
)
async def get_replicas(request: Request) -> JSONResponse:
    gw = request.app.state.gateway
    gw.auth.require_admin(request)
    settings = gw.settings
    stale_after = max(5.0, 3 * settings.replica_probe_s + settings.replica_probe_timeout_s)
    redis = gw.store.redis
    return JSONResponse(
        {
            "replicas": await read_replicas(redis, stale_after),
            "probe_interval_s": settings.replica_probe_s,
            "forget_after_s": settings.replica_forget_s,
            "targets": {b.name: settings.backend(b).targets for b in backends_of(gw.kinds)},
            "monitor": await lease_holder(redis),
        }
    )


@router.get(
    "/api/task/{task_id}/input",
    summary="The image a task was given (kept a while after it ends, for the console)",
    response_class=Response,
    responses={
        200: {
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in imaging.MEDIA_TYPES
            },
            "description": "The uploaded image, as it was sent.",
        },
        **error_responses(404, 410, 422),
    },
)
async def task_input(task_id: str, request: Request) -> Response:
    gw = request.app.state.gateway
    task = await gw.store.get(task_id, gw.auth.principal(request).scope)
    kind = next((k for k in gw.kinds if k.id == task.kind_id), None)
    if kind is None or task.media != "image":
        raise ApiError(
            404, "input_not_kept", f"task {task_id} is a {task.media} task: only images are kept"
        )
    if kind.private:  # personal data: never served, not even while the task waits or runs
        raise ApiError(
            404, "input_not_kept", f"task {task_id}'s upload is personal data: it is never kept"
        )
    store = gw.store
    data = await store.preview(task_id) or await store.raw.get(store.keys.input(task_id))
    if not data:
        settings = gw.settings
        if await store.preview_dropped(task_id):
            why = (
                "newer uploads took its place within the bytes kept for the console "
                f"({settings.preview_bytes_per_tenant} per tenant, GATEWAY_PREVIEW_BYTES_PER_TENANT; "
                f"{settings.preview_bytes_total} in all, GATEWAY_PREVIEW_BYTES_TOTAL)"
            )
        else:
            why = (
                f"uploads are kept {settings.keep_input_s} s after a task ends "
                "(GATEWAY_KEEP_INPUT_S), within a byte budget"
            )
        raise ApiError(
            404, "input_not_kept", f"the image of task {task_id} is no longer kept: {why}"
        )
    image = getattr(kind.request_class.FromString(data), kind.input_field).content
    return Response(
        image,
        media_type=imaging.media_type(image) or "application/octet-stream",
        headers={"Cache-Control": "private, max-age=600"},
    )
