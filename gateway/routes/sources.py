"""Live sources over REST: create, list, get, change, delete, pause and resume
a camera or stream the source workers watch (gateway/sources.py), and read
its newest frame and detections for the console's live view.

A source belongs to the caller's tenant; another tenant's source answers 404
as if it did not exist. Changes take effect at once: the workers see the
new revision within a second.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from gateway import sources
from gateway.errors import ApiError
from gateway.models import error_responses
from percept_runtime.errors import InvalidInput

# Every route may answer these; the routes on one source add 404 (ONE).
router = APIRouter(tags=["sources"], responses=error_responses(401, 422, 503))
ONE = error_responses(404)


def _store(request: Request) -> sources.SourceStore:
    gw = request.app.state.gateway
    return gw.sources


async def _shown(store: sources.SourceStore, record: dict[str, Any]) -> dict[str, Any]:
    return sources.public(
        record, await store.status(record["id"]), await store.counts(record["id"])
    )


async def _record(request: Request, source_id: str) -> tuple[sources.SourceStore, dict]:
    store = _store(request)
    scope = request.app.state.gateway.auth.principal(request).scope
    record = await store.get(source_id, scope)
    if record is None:
        raise ApiError(404, "not_found", f"no source {source_id!r}")
    return store, record


def _invalid(exc: InvalidInput) -> ApiError:
    return ApiError(422, "invalid_source", exc.message)


@router.post(
    "/api/sources",
    summary="Register a live source (camera, stream or file); workers start on it at once",
    status_code=201,
    responses=error_responses(400),
)
async def create_source(body: sources.NewSource, request: Request) -> JSONResponse:
    store = _store(request)
    tenant = request.app.state.gateway.auth.principal(request).tenant
    try:
        record = await store.create(tenant, body)
    except InvalidInput as exc:
        raise _invalid(exc) from None
    return JSONResponse(
        await _shown(store, record),
        status_code=201,
        headers={"Location": f"{request.base_url}api/sources/{record['id']}"},
    )


@router.get(
    "/api/sources",
    summary="List your sources with their state, rates and counts",
)
async def list_sources(request: Request) -> JSONResponse:
    store = _store(request)
    scope = request.app.state.gateway.auth.principal(request).scope
    records = await store.list(scope)
    return JSONResponse({"sources": [await _shown(store, r) for r in records]})


@router.get(
    "/api/sources/{source_id}",
    summary="One source: its settings, state, rates and counts",
    responses=ONE,
)
async def get_source(source_id: str, request: Request) -> JSONResponse:
    store, record = await _record(request, source_id)
    return JSONResponse(await _shown(store, record))


@router.patch(
    "/api/sources/{source_id}",
    summary="Change a source (only the fields given); the worker applies it at once",
    responses=error_responses(400, 404),
)
async def change_source(
    source_id: str, body: sources.SourceChange, request: Request
) -> JSONResponse:
    store, record = await _record(request, source_id)
    try:
        record = await store.change(record, body)
    except InvalidInput as exc:
        raise _invalid(exc) from None
    except ValueError as exc:  # the merged fields broke a model rule
        raise ApiError(422, "invalid_source", str(exc)) from None
    return JSONResponse(await _shown(store, record))


@router.delete(
    "/api/sources/{source_id}",
    summary="Stop watching a source and forget it",
    status_code=204,
    responses=ONE,
)
async def delete_source(source_id: str, request: Request) -> Response:
    store, record = await _record(request, source_id)
    await store.delete(record)
    return Response(status_code=204)


def _pause_route(paused: bool, summary: str) -> None:
    """POST /api/sources/{id}/pause (or /resume): the source's `paused` set, the source shown."""
    action = "pause" if paused else "resume"

    async def route(source_id: str, request: Request) -> JSONResponse:
        store, record = await _record(request, source_id)
        try:
            record = await store.change(record, sources.SourceChange(paused=paused))
        except InvalidInput as exc:  # its URL is refused now (a file gone, a policy changed)
            raise _invalid(exc) from None
        return JSONResponse(await _shown(store, record))

    router.add_api_route(f"/api/sources/{{source_id}}/{action}", route, methods=["POST"],
                         name=f"{action}_source", summary=summary, responses=ONE)  # fmt: skip


_pause_route(True, "Stop watching a source, keeping it")
_pause_route(False, "Watch a paused source again")


@router.get(
    "/api/sources/{source_id}/live",
    summary="The newest processed frame (base64 JPEG) with its boxes and track ids, for live views",
    responses=ONE,
)
async def source_live(source_id: str, request: Request) -> JSONResponse:
    await _record(request, source_id)
    gw = request.app.state.gateway
    frame = await gw.store.raw.hgetall(gw.sources.keys.frame(source_id))
    if not frame:
        raise ApiError(404, "no_frame", f"source {source_id!r} has no recent frame")
    meta = json.loads(frame[b"meta"])
    meta["jpeg"] = base64.b64encode(frame[b"jpeg"]).decode()
    return JSONResponse(meta, headers={"Cache-Control": "no-store"})
