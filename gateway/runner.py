"""Running one attempt of a task on its backend, and recording how it ended.

Both ways a task runs share this: dispatchers (a queued task) and the API
process itself (simple mode's inline path). A cancel (DELETE) reaches every
gateway process over pub/sub and cancels the in-flight gRPC call wherever it
runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import grpc

from gateway.backends import Backends, failed_on
from gateway.declare import TaskKind
from gateway.errors import RETRYABLE, task_error
from gateway.jobs import CANCEL_CHANNEL, DEFAULT_TENANT, Claimed, JobStore, Status, Task
from gateway.metrics import TASK_SECONDS, TASKS_FINISHED

logger = logging.getLogger(__name__)

RETRY = "retry"


@dataclass
class Outcome:
    """How an attempt ended: a final status (with result or error), or RETRY."""

    status: Status | str
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    replica: str | None = None
    finished_at: float = 0.0


class TaskRunner:
    def __init__(self, store: JobStore, backends: Backends) -> None:
        self.store = store
        self.backends = backends
        self.running: dict[str, asyncio.Task] = {}

    async def attempt(
        self,
        kind: TaskKind,
        task_id: str,
        request: bytes,
        *,
        created_at: float,
        claimed: Claimed | None = None,
        record: Task | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> Outcome:
        """Run the task once (for `tenant`, whose data the backend may use). Records
        its end (succeeded, failed, or acknowledges a cancelled one) unless the
        outcome is RETRY (the replica was lost). `record`: the whole record to
        write at the end if the task has none yet."""
        started = time.time()

        async def on_frame(frame: dict, done: int, total: int) -> None:
            await self.store.add_frame(task_id, frame, done, total)

        call = asyncio.ensure_future(
            self.backends.run(
                kind, request, task_id, on_frame if kind.streaming else None, tenant=tenant
            )
        )
        self.running[task_id] = call
        try:
            try:
                result, replica = await call
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    call.cancel()
                    raise  # we are being stopped, not the task cancelled
                # DELETE /api/task/{id}: the status is already set; drop the entry.
                if claimed is not None:
                    await self.store.ack(claimed)
                return Outcome(Status.CANCELLED)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code in RETRYABLE and claimed is not None:
                    logger.warning("backend %s for task %s; retrying", code.name, task_id)
                    return Outcome(RETRY)
                error = task_error(code, exc.details())
                if code not in (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.NOT_FOUND,
                ):
                    logger.error("task %s failed: %s %s", task_id, code.name, exc.details())
                return await self._end(kind, task_id, Status.FAILED, claimed, created_at, started,
                                       record, request, error=error,
                                       replica=failed_on(exc))  # fmt: skip
            if kind.streaming:  # the frames, then how the video ended (the last response's)
                result = {"frames": await self.store.collected_frames(task_id), **(result or {})}
            return await self._end(
                kind, task_id, Status.SUCCEEDED, claimed, created_at, started, record, request,
                result=result, replica=replica,
            )  # fmt: skip
        finally:
            self.running.pop(task_id, None)

    async def _end(
        self,
        kind: TaskKind,
        task_id: str,
        status: Status,
        claimed: Claimed | None,
        created_at: float,
        started: float,
        record: Task | None,
        request: bytes,
        *,
        result: dict | None = None,
        error: dict | None = None,
        replica: str | None = None,
    ) -> Outcome:
        if await self.store.finish(
            task_id, status, result=result, error=error, replica=replica, claimed=claimed,
            create=record, preview=request if record is not None else None,
        ):  # fmt: skip
            record_end(kind, status, created_at, started)
        return Outcome(status, result, error, replica, time.time())

    # --- cancels ----------------------------------------------------------------------

    async def listen_for_cancels(self) -> None:
        while True:  # a Redis restart must not end cancellation for good
            try:
                await self._cancel_messages()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                logger.warning("cancel listener lost Redis; resubscribing", exc_info=True)
                await asyncio.sleep(1)

    async def _cancel_messages(self) -> None:
        pubsub = self.store.redis.pubsub()
        await pubsub.subscribe(CANCEL_CHANNEL)
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                task_id = message["data"]
                running = self.running.get(task_id)
                if running is not None:
                    logger.info("task %s cancelled by the client; cancelling its call", task_id)
                    running.cancel()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


def record_end(kind: TaskKind, status: Status, created_at: float, started: float) -> None:
    """Metrics of a task that ended: count, time waiting, time running."""
    now = time.time()
    TASKS_FINISHED.labels(kind.kind, kind.media, status.value).inc()
    TASK_SECONDS.labels(kind.kind, kind.media, "wait").observe(max(0.0, started - created_at))
    TASK_SECONDS.labels(kind.kind, kind.media, "run").observe(max(0.0, now - started))
