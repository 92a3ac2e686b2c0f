"""Dispatchers: read the task-kind queues and run each task on its backend.

Per backend, one loop reads new entries from all of that backend's kinds at
once (up to its free slots) and runs each as its own asyncio task. Leases are
renewed for every entry held in one command per queue; every few seconds
entries whose dispatcher went silent for a lease are claimed and run again (up
to max_attempts); inline tasks whose API process died are failed. A Redis
restart that lost the consumer groups is noticed and the groups recreated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from pathlib import Path

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.backends import Backends
from gateway.declare import TaskKind
from gateway.jobs import Claimed, JobStore, Status
from gateway.runner import RETRY, TaskRunner, record_end
from gateway.settings import GatewaySettings
from percept_runtime.logs import REQUEST_ID

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
SWEEP_S = 5.0
READ_BLOCK_MS = 5000  # a read returns as soon as work arrives; idle, it wakes this rarely
PRUNE_S = 60.0
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class Dispatcher:
    def __init__(
        self,
        store: JobStore,
        backends: Backends,
        settings: GatewaySettings,
        kinds: tuple[TaskKind, ...],
        runner: TaskRunner,
    ) -> None:
        self.store = store
        self.backends = backends
        self.settings = settings
        self.runner = runner
        self.kinds = {k.id: k for k in kinds}
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease_ms = int(settings.lease_s * 1000)
        self.by_backend: dict[str, list[str]] = defaultdict(list)
        for kind in kinds:
            self.by_backend[kind.backend.name].append(kind.id)
        self.limit = {k.backend.name: settings.backend(k.backend).concurrency for k in kinds}
        self.active: dict[str, int] = dict.fromkeys(self.by_backend, 0)
        self._freed = {name: asyncio.Event() for name in self.by_backend}
        self._held: dict[str, set[str]] = defaultdict(set)  # kind id -> entry ids running here
        self._tasks: list[asyncio.Task] = []
        self._work: set[asyncio.Task] = set()
        self._stopping = False

    async def start(self) -> None:
        with contextlib.suppress(*_REDIS_DOWN):
            await self.store.ensure_groups()
        self._tasks = [
            asyncio.create_task(self._read_loop(name), name=f"dispatch-{name}")
            for name in self.by_backend
        ]
        self._tasks.append(asyncio.create_task(self._renew_loop(), name="lease-renewal"))
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="sweep"))
        self._tasks.append(asyncio.create_task(self._heartbeat_file(), name="heartbeat-file"))
        logger.info("dispatcher %s started: %s", self.consumer, self.limit)

    async def stop(self) -> None:
        """Stop taking work; hand running tasks back to the queue for others."""
        self._stopping = True
        for task in [*self._tasks, *self._work]:
            task.cancel()
        for task in [*self._tasks, *self._work]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- taking work ------------------------------------------------------------------

    def free(self, backend: str) -> int:
        return self.limit[backend] - self.active[backend]

    async def _read_loop(self, backend: str) -> None:
        kind_ids = self.by_backend[backend]
        while not self._stopping:
            try:
                free = self.free(backend)
                if free <= 0:
                    self._freed[backend].clear()
                    await self._freed[backend].wait()
                    continue
                for claimed in await self.store.read_new(
                    kind_ids, self.consumer, free, READ_BLOCK_MS
                ):
                    self._spawn(claimed)
            except asyncio.CancelledError:
                raise
            except (ResponseError, *_REDIS_DOWN) as exc:
                await self._redis_trouble(exc)
            except Exception:  # noqa: BLE001 - keep dispatching whatever one read did
                logger.exception("dispatcher loop for %s failed; continuing", backend)
                await asyncio.sleep(1)

    async def _redis_trouble(self, exc: Exception) -> None:
        if "NOGROUP" in str(exc):
            logger.warning("the queues' consumer groups are gone (Redis restarted?); recreating")
            with contextlib.suppress(*_REDIS_DOWN, ResponseError):
                await self.store.ensure_groups()
            return
        logger.warning("Redis unavailable to the dispatcher (%s); retrying", exc)
        await asyncio.sleep(1)

    def _spawn(self, claimed: Claimed) -> None:
        kind = self.kinds[claimed.kind_id]
        backend = kind.backend.name
        self.active[backend] += 1
        self._held[claimed.kind_id].add(claimed.entry_id)
        task = asyncio.create_task(self._execute(kind, claimed))
        self._work.add(task)

        def done(t: asyncio.Task) -> None:
            self._work.discard(t)
            self.active[backend] -= 1
            self._held[claimed.kind_id].discard(claimed.entry_id)
            self._freed[backend].set()

        task.add_done_callback(done)

    async def _execute(self, kind: TaskKind, claimed: Claimed) -> None:
        task_id = claimed.task_id
        REQUEST_ID.set(task_id)
        max_attempts = self.settings.max_attempts
        try:
            while True:
                started = await self.store.start(task_id, max_attempts)
                if started.code == 0:  # cancelled, expired or already done
                    await self.store.ack(claimed)
                    return
                if started.code == -1:
                    await self._give_up(kind, claimed, started.attempts)
                    return
                if started.code == -2:
                    await self._fail(
                        kind, claimed, "input_lost", "the uploaded input expired before it ran"
                    )
                    return
                outcome = await self.runner.attempt(
                    kind, task_id, started.request, created_at=started.created_at,
                    claimed=claimed, tenant=started.tenant,
                )  # fmt: skip
                if outcome.status != RETRY:
                    return
                if started.attempts >= max_attempts:
                    await self._give_up(kind, claimed, started.attempts)
                    return
                await asyncio.sleep(min(2.0, 0.25 * 2**started.attempts))
        except asyncio.CancelledError:
            if self._stopping:
                # Shutting down: hand the task back; a live dispatcher claims its
                # entry once the lease runs out.
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.store.requeue(task_id))
            raise
        except Exception:  # noqa: BLE001 - leave the entry pending: it is retried after the lease
            logger.exception("task %s: dispatching failed; it is retried after the lease", task_id)

    async def _give_up(self, kind: TaskKind, claimed: Claimed, attempts: int) -> None:
        await self._fail(
            kind,
            claimed,
            "attempts_exhausted",
            f"gave up after {attempts} attempts: no backend replica could finish it",
        )

    async def _fail(self, kind: TaskKind, claimed: Claimed, code: str, message: str) -> None:
        now = time.time()
        if await self.store.finish(
            claimed.task_id,
            Status.FAILED,
            error={"code": code, "message": message},
            claimed=claimed,
            allowed=(Status.QUEUED, Status.RUNNING),
        ):
            record_end(kind, Status.FAILED, now, now)

    # --- leases, reclaiming, housekeeping -------------------------------------------------

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_s / 3)
            for kind_id, entries in list(self._held.items()):
                if entries:
                    with contextlib.suppress(*_REDIS_DOWN, ResponseError):
                        await self.store.renew(kind_id, self.consumer, list(entries))

    async def _sweep_loop(self) -> None:
        last_prune = 0.0
        while True:
            await asyncio.sleep(min(SWEEP_S, self.settings.lease_s / 2))
            try:
                await self._reclaim()
                await self._fail_lost_inline()
                if time.monotonic() - last_prune > PRUNE_S:
                    last_prune = time.monotonic()
                    await self.store.prune_indexes()
            except asyncio.CancelledError:
                raise
            except (ResponseError, *_REDIS_DOWN) as exc:
                await self._redis_trouble(exc)
            except Exception:  # noqa: BLE001
                logger.exception("sweep failed; continuing")

    async def _reclaim(self) -> None:
        for kind_id, kind in self.kinds.items():
            free = self.free(kind.backend.name)
            if free <= 0:
                continue
            for claimed in await self.store.reclaim(kind_id, self.consumer, self.lease_ms, free):
                logger.info("task %s: its dispatcher went silent; running it here", claimed.task_id)
                self._spawn(claimed)

    async def _fail_lost_inline(self) -> None:
        grace = 5.0
        for task_id in await self.store.overdue_inline(time.time() - grace):
            if task_id in self.runner.running:
                continue
            await self.store.finish(
                task_id,
                Status.FAILED,
                error={
                    "code": "gateway_lost",
                    "message": "the gateway process running this simple-mode task stopped; submit it again",
                },
            )

    async def _heartbeat_file(self) -> None:
        """Touch the heartbeat file while this process's loop runs and Redis answers:
        what container liveness probes check (`python -m gateway.worker --check`)."""
        path = Path(self.settings.heartbeat_file)
        while True:
            with contextlib.suppress(Exception):
                if await self.store.redis.ping():
                    await asyncio.to_thread(path.touch)
            await asyncio.sleep(HEARTBEAT_S)
