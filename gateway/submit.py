"""Accepting a task: the one path every submit route takes, HTTP aside.

The request is serialized once. Queued (the default): one Redis script stores
the record, the serialized request and the queue entry; a dispatcher runs it.
Simple mode (`?wait=true`) on an image: this process calls the backend itself
and answers as soon as the call returns - no queue hop, no polling - and the
task is recorded whole, once, as it ends (one script: listed, measured, on the
console like any other). A call still running when the wait ends is recorded
as running then and goes on in the background (the caller gets 202 and polls);
if this process dies before it ends, the sweep fails it with `gateway_lost`.
With an Idempotency-Key the record is written first (the key must be checked
before running).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

from gateway.auth import ANONYMOUS_ADMIN, Principal
from gateway.backends import Backends
from gateway.declare import TaskKind
from gateway.jobs import TERMINAL, JobStore, Status, Task
from gateway.metrics import TASKS_SUBMITTED
from gateway.runner import TaskRunner
from gateway.settings import GatewaySettings

INLINE_GRACE_S = 5.0


class Submitter:
    def __init__(
        self, store: JobStore, backends: Backends, runner: TaskRunner, settings: GatewaySettings
    ) -> None:
        self.store = store
        self.backends = backends
        self.runner = runner
        self.settings = settings
        self.inline_active = 0
        self._background: set[asyncio.Task] = set()

    async def submit(
        self,
        kind: TaskKind,
        request: bytes,
        options: dict,
        *,
        principal: Principal = ANONYMOUS_ADMIN,
        idempotency_key: str | None = None,
        wait: bool = False,
    ) -> tuple[str, Task | None, str]:
        """Accept a task (`request` is its serialized gRPC request) for a
        principal (its tenant owns it; its limits apply). Returns its id, with
        `wait` the finished task when it ended in time (else None), and its
        status as of now (a replayed Idempotency-Key's task may have ended)."""
        tenant = principal.tenant
        request_hash = ""
        if idempotency_key:  # hashed in place: no copy of the upload
            digest = hashlib.sha256(kind.id.encode() + b"\0")
            digest.update(request)
            if "webhook" in options:  # another subscription named: another request
                digest.update(b"\0webhook=" + options["webhook"].encode())
            request_hash = digest.hexdigest()
        common = dict(
            tenant=tenant,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            key_id=principal.key_id,
            limits=principal.limits,
            private=kind.private,
        )
        # Recorded before it runs: what must be checked first (the key's
        # in-flight limits, an Idempotency-Key) is checked in the same script.
        record_first = bool(idempotency_key) or principal.limits.counted
        if wait and not kind.streaming and self.inline_active < self.settings.inline_concurrency:
            now = time.time()
            task = Task(
                uuid.uuid4().hex, kind.kind, kind.media, Status.RUNNING, now,
                now + self.store.ttl_s, options, started_at=now, attempts=1, tenant=tenant,
                mode="inline", private=kind.private,
            )  # fmt: skip
            if record_first:
                task.id, created = await self.store.submit(
                    kind.kind, kind.media, options, request, task_id=task.id, created_at=now,
                    inline_deadline=self._inline_deadline(now), **common,
                )  # fmt: skip
                if not created:
                    return await self._waited(task.id, tenant)
            TASKS_SUBMITTED.labels(kind.kind, kind.media, "inline").inc()
            done = await self._inline(kind, task, request, recorded=record_first)
            return task.id, done, done.status.value if done else Status.RUNNING.value
        task_id, created = await self.store.submit(
            kind.kind, kind.media, options, request, **common
        )
        if created:
            TASKS_SUBMITTED.labels(kind.kind, kind.media, "queued").inc()
        if wait:
            return await self._waited(task_id, tenant)
        if created:
            return task_id, None, Status.QUEUED.value
        return task_id, None, (await self.store.get(task_id, tenant)).status.value

    async def _waited(self, task_id: str, tenant: str) -> tuple[str, Task | None, str]:
        done = await self.wait(task_id, tenant, self.settings.wait_timeout_s)
        if done is not None:
            return task_id, done, done.status.value
        return task_id, None, (await self.store.get(task_id, tenant)).status.value

    def _inline_deadline(self, now: float) -> float:
        return now + self.settings.image_deadline_s + INLINE_GRACE_S

    async def _inline(
        self, kind: TaskKind, task: Task, request: bytes, recorded: bool
    ) -> Task | None:
        async def run():
            self.inline_active += 1
            try:
                return await self.runner.attempt(
                    kind, task.id, request, created_at=task.created_at, record=task,
                    tenant=task.tenant,
                )  # fmt: skip
            finally:
                self.inline_active -= 1

        job = asyncio.ensure_future(run())
        self._background.add(job)
        job.add_done_callback(self._background.discard)
        done, _ = await asyncio.wait({job}, timeout=self.settings.wait_timeout_s)
        if not done:
            if not recorded:  # still running: record it now; the caller polls
                await self.store.submit(
                    kind.kind, kind.media, task.options, request, tenant=task.tenant,
                    task_id=task.id, created_at=task.created_at,
                    inline_deadline=self._inline_deadline(task.created_at), private=task.private,
                )  # fmt: skip
            return None
        outcome = job.result()
        task.status = Status(outcome.status)
        task.finished_at = outcome.finished_at or time.time()
        task.result, task.error, task.replica = outcome.result, outcome.error, outcome.replica
        return task

    async def wait(self, task_id: str, tenant: str, wait_s: float) -> Task | None:
        """The task once it ended, following its events for up to wait_s."""
        deadline = time.monotonic() + wait_s
        after = "0"
        while (left := deadline - time.monotonic()) > 0:
            for event in await self.store.events(
                task_id, after, block_ms=max(1, int(min(left, 5) * 1000))
            ):
                after = event.id
                if event.type == "status" and event.data.get("status") in TERMINAL:
                    return await self.store.get(task_id, tenant)
        return None

    async def close(self) -> None:
        """Let inline calls still running finish (their callers may be polling)."""
        if self._background:
            await asyncio.wait(self._background, timeout=self.settings.image_deadline_s)
