"""Task routes: status, live events (SSE), cancel and listing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from gateway.deps import StoreDep
from gateway.errors import error_response
from gateway.jobs import KINDS, TERMINAL, Status, TaskGone, TaskNotFound

router = APIRouter(tags=["tasks"])


def _missing(task_id: str, exc: Exception) -> JSONResponse:
    if isinstance(exc, TaskGone):
        return error_response(410, "expired", f"task {task_id} existed but its record expired")
    return error_response(404, "not_found", f"no task {task_id}")


@router.get("/api/task/{task_id}", name="get_task", summary="A task's status, progress and result")
async def get_task(task_id: str, request: Request, store: StoreDep) -> JSONResponse:
    try:
        task = await store.get(task_id)
    except (TaskGone, TaskNotFound) as exc:
        return _missing(task_id, exc)
    return JSONResponse(task.to_json(str(request.url_for("get_task", task_id=task_id))))


@router.delete("/api/task/{task_id}", summary="Cancel a queued or running task")
async def cancel_task(task_id: str, request: Request, store: StoreDep) -> JSONResponse:
    try:
        task, changed = await store.cancel(task_id)
    except (TaskGone, TaskNotFound) as exc:
        return _missing(task_id, exc)
    if not changed:
        return error_response(
            409, "already_finished", f"task {task_id} already ended as {task.status.value}"
        )
    return JSONResponse(task.to_json(str(request.url_for("get_task", task_id=task_id))))


@router.get(
    "/api/task/{task_id}/events",
    summary="Server-Sent Events: status, progress and each frame's result",
)
async def task_events(
    task_id: str,
    store: StoreDep,
    last_event_id: str | None = Header(
        None, description="Resume after this event id (sent by EventSource)."
    ),
):
    try:
        task = await store.get(task_id)
    except (TaskGone, TaskNotFound) as exc:
        return _missing(task_id, exc)

    async def stream() -> AsyncIterator[str]:
        after = last_event_id or "0"
        ended = False
        while not ended:
            events = await store.events(task_id, after, block_ms=10_000)
            if not events:
                try:
                    current = await store.get(task_id)
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
                    data["task"] = (await store.get(task_id)).to_json()
                    ended = True
                yield f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(data)}\n\n"

    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        "X-Task-Status": task.status.value,
    }
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.get("/api/tasks", summary="List tasks, newest first")
async def list_tasks(
    store: StoreDep,
    status: Status | None = Query(None, description="Only tasks in this status."),
    kind: str | None = Query(
        None, pattern="^(" + "|".join(KINDS) + ")$", description="Only tasks of this kind."
    ),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(
        None, pattern=r"^\d+(\.\d+)?$", description="next_cursor of the previous page."
    ),
) -> JSONResponse:
    tasks, next_cursor = await store.list(status.value if status else None, kind, limit, cursor)
    return JSONResponse({"tasks": [t.to_json() for t in tasks], "next_cursor": next_cursor})
