"""Event routes: the tenant's event log (paged) and its live SSE stream."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from gateway import events
from gateway.errors import ApiError
from gateway.jobs import MAX_BLOCK_MS
from gateway.models import ascii_float, ascii_int, error_responses
from gateway.routes.openapi import sse_response

router = APIRouter(tags=["events"], responses=error_responses(400, 401, 422, 503))

POSITION = re.compile(r"^\d{1,20}-\d{1,20}$")
_U64 = 2**64 - 1


def _position(text: str | None, what: str) -> str | None:
    if text is None:
        return None
    if not POSITION.match(text) or any(int(p) > _U64 for p in text.split("-")):
        raise ApiError(
            400, f"invalid_{what}", f"{what} must be an event's seq (digits-digits), got {text!r}"
        )
    return text


def _types(type_: list[str] | None) -> frozenset[str]:
    wanted = frozenset(t for value in type_ or () for t in value.split(",") if t)
    unknown = sorted(wanted - set(events.EVENT_TYPES))
    if unknown:
        raise ApiError(
            422,
            "invalid_type",
            f"unknown event type {', '.join(unknown)}; one of {', '.join(events.EVENT_TYPES)}",
            fields=["type"],
        )
    return wanted


class Event(BaseModel):
    id: str = Field(description="evt_ and hex: the same id in the log, webhooks and MQTT.")
    type: str = Field(description="One of the event types (task.succeeded, zone.entered, ...).")
    tenant: str
    time: float = Field(description="When it happened, Unix seconds.")
    seq: str = Field(description="Its position in the tenant's log: orders a tenant's events.")
    data: dict[str, Any] = Field(description="task_id, kind, status, ... or source_id, ...")


class EventPage(BaseModel):
    events: list[Event]
    next_cursor: str | None = Field(description="Pass as `cursor` for older events; null at end.")


TypeQuery = Query(None, alias="type", description="Only these types (repeat, or comma-separated).")


@router.get(
    "/api/events",
    summary="The event log, newest first",
    response_model=EventPage,
)
async def list_events(
    request: Request,
    type_: list[str] | None = TypeQuery,
    source_id: str | None = Query(None, max_length=200, description="Only this source's."),
    task_id: str | None = Query(None, max_length=64, description="Only this task's."),
    since: Annotated[
        ascii_float(ge=0) | None, Query(description="Only events at or after (Unix seconds).")
    ] = None,
    limit: Annotated[ascii_int(ge=1, le=500), Query()] = 100,
    cursor: str | None = Query(None, description="next_cursor of the previous page."),
) -> JSONResponse:
    gw = request.app.state.gateway
    scope = gw.auth.principal(request).scope
    filters = events.Filters(_types(type_), source_id, task_id)
    found, next_cursor = await events.page(
        gw.store.redis,
        scope,
        filters,
        limit=limit,
        cursor=_position(cursor, "cursor"),
        since=since,
    )
    return JSONResponse({"events": [e for _, e in found], "next_cursor": next_cursor})


@router.get(
    "/api/events/stream",
    summary="Server-Sent Events: the event log, live",
    response_class=StreamingResponse,
    responses=sse_response(
        "One SSE event per Percept event: `event:` its type, `id:` its seq (send it back "
        "as Last-Event-ID to resume), `data:` the envelope."
    ),
)
async def stream_events(
    request: Request,
    type_: list[str] | None = TypeQuery,
    source_id: str | None = Query(None, max_length=200, description="Only this source's."),
    task_id: str | None = Query(None, max_length=64, description="Only this task's."),
    last_event_id: str | None = Header(
        None, description="Resume after this seq (EventSource sends it on reconnect)."
    ),
) -> StreamingResponse:
    gw = request.app.state.gateway
    scope = gw.auth.principal(request).scope
    filters = events.Filters(_types(type_), source_id, task_id)
    after = _position(last_event_id, "last_event_id")
    redis = gw.store.redis
    if after is None:
        after = await events.last_position(redis, scope)

    async def stream() -> AsyncIterator[str]:
        position = after
        yield ": connected\n\n"
        while True:
            found = await events.follow(redis, scope, position, block_ms=MAX_BLOCK_MS // 2)
            if not found:
                yield ": keep-alive\n\n"
                continue
            for entry_id, event in found:
                position = entry_id
                if filters.match(event):
                    yield (
                        f"id: {entry_id}\nevent: {event['type']}\n"
                        f"data: {json.dumps(event, separators=(',', ':'))}\n\n"
                    )

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
