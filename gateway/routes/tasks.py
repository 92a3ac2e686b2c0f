"""Task routes: status, live events (SSE), cancel and listing."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from gateway.errors import ApiError, TaskGone, TaskNotFound
from gateway.jobs import TERMINAL, Status
from gateway.models import TaskPage, ascii_float, ascii_int, error_responses, task_url

EVENT_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")
_U64 = 2**64 - 1  # Redis stream ids are two unsigned 64-bit numbers


def _valid_event_id(text: str) -> bool:
    return bool(EVENT_ID.match(text)) and all(int(part) <= _U64 for part in text.split("-"))


def router_for(kinds, task_model) -> APIRouter:
    router = APIRouter(tags=["tasks"])
    kind_names = sorted({k.kind for k in kinds})

    @router.get(
        "/api/task/{task_id}",
        name="get_task",
        summary="A task's status, progress and result",
        response_model=task_model,
        responses=error_responses(401, 404, 410, 422, 503),
    )
    async def get_task(task_id: str, request: Request) -> JSONResponse:
        gw = request.app.state.gateway
        scope = gw.auth.principal(request).scope
        task = await gw.store.get(task_id, scope)
        return JSONResponse(task.to_json(task_url(request, task_id), tenant=scope is None))

    @router.delete(
        "/api/task/{task_id}",
        summary="Cancel a queued or running task",
        response_model=task_model,
        responses=error_responses(401, 404, 409, 410, 422, 503),
    )
    async def cancel_task(task_id: str, request: Request) -> JSONResponse:
        gw = request.app.state.gateway
        scope = gw.auth.principal(request).scope
        task, changed = await gw.store.cancel(task_id, scope)
        if not changed:
            raise ApiError(
                409, "already_finished", f"task {task_id} already ended as {task.status.value}"
            )
        return JSONResponse(task.to_json(task_url(request, task_id), tenant=scope is None))

    @router.get(
        "/api/task/{task_id}/events",
        summary="Server-Sent Events: status, progress and each frame's result",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "`status`, `progress` and `frame` events; the last `status` "
                "event carries the whole task.",
            },
            **error_responses(400, 401, 404, 410, 422, 503),
        },
    )
    async def task_events(
        task_id: str,
        request: Request,
        last_event_id: str | None = Header(
            None, description="Resume after this event id (sent by EventSource)."
        ),
    ):
        gw = request.app.state.gateway
        store = gw.store
        scope = gw.auth.principal(request).scope
        if last_event_id is not None and not _valid_event_id(last_event_id):
            raise ApiError(
                400,
                "invalid_last_event_id",
                "Last-Event-ID must be an event id this stream sent (digits, or digits-digits)",
            )
        task = await store.get(task_id, scope)

        async def stream() -> AsyncIterator[str]:
            after = last_event_id or "0"
            ended = False
            while not ended:
                events = await store.events(task_id, after, block_ms=10_000)
                if not events:
                    try:
                        current = await store.get(task_id, scope)
                    except (TaskGone, TaskNotFound):
                        return
                    if current.status in TERMINAL:
                        return
                    yield ": keep-alive\n\n"
                    continue
                for event in events:
                    after = event.id
                    data = dict(event.data)
                    if event.type == "status" and data.get("status") in TERMINAL:
                        ended_task = await store.get(task_id, scope)
                        data["task"] = ended_task.to_json(tenant=scope is None)
                        ended = True
                    yield f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(data)}\n\n"

        headers = {
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "X-Task-Status": task.status.value,
        }
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    @router.get(
        "/api/tasks",
        summary="List tasks, newest first",
        response_model=TaskPage,
        responses=error_responses(401, 422, 503),
    )
    async def list_tasks(
        request: Request,
        status: Status | None = Query(None, description="Only tasks in this status."),
        kind: str | None = Query(
            None,
            pattern="^(" + "|".join(kind_names) + ")$",
            description="Only tasks of this kind.",
        ),
        media: Literal["image", "video"] | None = Query(None, description="Only this media."),
        since: Annotated[
            ascii_float(ge=0) | None,
            Query(description="Only tasks created at or after this time (Unix seconds)."),
        ] = None,
        until: Annotated[
            ascii_float(ge=0) | None,
            Query(description="Only tasks created at or before this time (Unix seconds)."),
        ] = None,
        q: str | None = Query(
            None,
            pattern="^[0-9a-f]{4,32}$",
            description="Only tasks whose id starts with this (4-32 hex digits).",
        ),
        limit: Annotated[ascii_int(ge=1, le=500), Query()] = 50,
        cursor: str | None = Query(
            None, pattern=r"^[0-9]+(\.[0-9]+)?$", description="next_cursor of the previous page."
        ),
    ) -> JSONResponse:
        gw = request.app.state.gateway
        scope = gw.auth.principal(request).scope
        if q:
            found = await gw.store.find(q, limit, scope)
            found_json = [t.to_json(tenant=scope is None) for t in found]
            return JSONResponse({"tasks": found_json, "next_cursor": None})
        tasks, next_cursor = await gw.store.list(
            status.value if status else None,
            kind,
            limit,
            cursor,
            scope,
            media=media,
            since=since,
            until=until,
        )
        listed = [t.to_json(tenant=scope is None) for t in tasks]
        return JSONResponse({"tasks": listed, "next_cursor": next_cursor})

    return router
