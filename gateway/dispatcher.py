"""Dispatchers: read the per-kind queues and run each task on the gRPC backends.

Each kind gets `concurrency` loops. A loop claims a queue entry (one whose
lease ran out first, else a new one), marks the task running, renews the lease
while it works, writes progress and per-frame results as they stream in, and
acknowledges the entry only when the task has ended. A dispatcher that dies
leaves its entry pending; another claims it after the lease and runs the task
again (up to max_attempts). Cancels arrive over pub/sub and cancel the
in-flight gRPC call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from pathlib import Path

import grpc

from gateway.backends import Backends
from gateway.errors import RETRYABLE, task_error
from gateway.jobs import CANCEL_CHANNEL, KINDS, JobStore, Status
from gateway.metrics import TASKS_FINISHED
from gateway.settings import GatewaySettings
from percept_runtime.logs import REQUEST_ID

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5.0


class Dispatcher:
    def __init__(self, store: JobStore, backends: Backends, settings: GatewaySettings) -> None:
        self.store = store
        self.backends = backends
        self.settings = settings
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease_ms = int(settings.lease_s * 1000)
        self.concurrency = {
            "face_detection": settings.face_concurrency,
            "object_detection": settings.object_concurrency,
        }
        self._running: dict[str, asyncio.Task] = {}
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    async def start(self) -> None:
        await self.store.ensure_groups()
        self._tasks = [
            asyncio.create_task(self._loop(kind, i), name=f"dispatch-{kind}-{i}")
            for kind in KINDS
            for i in range(self.concurrency[kind])
        ]
        self._tasks.append(asyncio.create_task(self._listen_for_cancels(), name="cancel-listener"))
        self._tasks.append(asyncio.create_task(self._heartbeat_file(), name="heartbeat-file"))
        logger.info("dispatcher %s started: %s", self.consumer, self.concurrency)

    async def stop(self) -> None:
        """Stop taking work; hand running tasks back to the queue for others."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _loop(self, kind: str, slot: int) -> None:
        while not self._stopping:
            try:
                claimed = await self.store.claim(kind, self.consumer, self.lease_ms, block_ms=1000)
                if claimed:
                    await self._run(kind, *claimed)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep dispatching whatever one task did
                logger.exception("dispatcher loop %s/%d failed; continuing", kind, slot)
                await asyncio.sleep(1)

    async def _heartbeat(self, kind: str, entry_id: str) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_s / 3)
            await self.store.heartbeat(kind, self.consumer, entry_id)

    async def _run(self, kind: str, entry_id: str, task_id: str) -> None:
        REQUEST_ID.set(task_id)
        task = await self.store.start(task_id)
        if task is None:  # cancelled, expired or already done
            await self.store.ack(kind, entry_id)
            return
        if task.attempts > self.settings.max_attempts:
            await self._give_up(kind, entry_id, task_id, task.attempts - 1)
            return
        data = await self.store.input(task_id)
        if data is None:
            await self.store.fail_unstarted(
                task_id, {"code": "input_lost", "message": "the uploaded input expired"}
            )
            await self.store.ack(kind, entry_id)
            return
        heartbeat = asyncio.create_task(self._heartbeat(kind, entry_id))
        attempt = task.attempts
        try:
            while True:
                outcome = await self._attempt(task_id, kind, task.media, task.options, data)
                if outcome != "retry":
                    break
                if attempt >= self.settings.max_attempts:
                    await self._give_up(kind, entry_id, task_id, attempt)
                    return
                await asyncio.sleep(min(2.0, 0.25 * 2**attempt))
                task = await self.store.start(task_id)
                if task is None:
                    break
                attempt = task.attempts
            await self.store.ack(kind, entry_id)
        except asyncio.CancelledError:
            # Shutting down: leave the entry pending and hand the task back; a
            # live dispatcher claims it once the lease runs out.
            await asyncio.shield(self.store.requeue(task_id))
            raise
        finally:
            heartbeat.cancel()

    async def _attempt(
        self, task_id: str, kind: str, media: str, options: dict, data: bytes
    ) -> str:
        """One run of the task; 'retry' when another replica should try."""

        async def on_frame(frame: dict, done: int, total: int) -> None:
            await self.store.add_frame(task_id, frame, done, total)

        call = asyncio.create_task(self.backends.run(kind, media, options, data, on_frame))
        self._running[task_id] = call
        try:
            try:
                result = await call
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise  # we are being stopped, not the task cancelled
                return "cancelled"  # DELETE /api/task/{id}: the status is already set
            if media == "video":
                result = {"frames": await self.store.collected_frames(task_id)}
            if await self.store.finish(task_id, Status.SUCCEEDED, result=result):
                TASKS_FINISHED.labels(kind, "succeeded").inc()
            return "done"
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code in RETRYABLE:
                logger.warning("backend %s for task %s; retrying", code.name, task_id)
                return "retry"
            error = task_error(code, exc.details())
            if code not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED):
                logger.error("task %s failed: %s %s", task_id, code.name, exc.details())
            if await self.store.finish(task_id, Status.FAILED, error=error):
                TASKS_FINISHED.labels(kind, "failed").inc()
            return "done"
        finally:
            self._running.pop(task_id, None)

    async def _give_up(self, kind: str, entry_id: str, task_id: str, attempts: int) -> None:
        await self.store.fail_unstarted(
            task_id,
            {
                "code": "attempts_exhausted",
                "message": f"gave up after {attempts} attempts: no backend replica could finish it",
            },
        )
        TASKS_FINISHED.labels(kind, "failed").inc()
        await self.store.ack(kind, entry_id)

    async def _heartbeat_file(self) -> None:
        """Touch the heartbeat file while this process's loop runs and Redis answers:
        what container liveness probes check (`python -m gateway.worker --check`)."""
        path = Path(self.settings.heartbeat_file)
        while True:
            with contextlib.suppress(Exception):
                if await self.store.redis.ping():
                    await asyncio.to_thread(path.touch)
            await asyncio.sleep(HEARTBEAT_S)

    async def _listen_for_cancels(self) -> None:
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
                running = self._running.get(task_id)
                if running is not None:
                    logger.info(
                        "task %s cancelled by the client; cancelling its gRPC call", task_id
                    )
                    running.cancel()
        finally:
            await pubsub.aclose()
