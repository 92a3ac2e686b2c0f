"""The job table: JobStore, used by the routes and the dispatchers.

A task is a record (`records.py`), stored under the names of one key schema
(`schema.py`), queued by kind (`queue.py`), listed and searched through
sorted-set indexes (`index.py`), counted in per-minute statistics
(`statistics.py`), and, an image, kept a while as the console's preview
(`previews.py`), within its API key's quotas (`quotas.py`). Every state change
is one Lua script (`lua/`, loaded by `scripts.py`), so a submit, a start and a
finish are one round trip each, and cancel, finish and retry cannot overwrite
each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.errors import ApiError
from gateway.events import Retention
from gateway.jobs import quotas, scripts
from gateway.jobs.index import Index
from gateway.jobs.previews import PREVIEW_BYTES, Previews
from gateway.jobs.queue import GROUP, MAX_BLOCK_MS, Queues
from gateway.jobs.records import DEFAULT_TENANT, Claimed, Event, Status, Task
from gateway.jobs.replication import ReplicaWait
from gateway.jobs.schema import CANCEL_CHANNEL, PLAIN, KeySchema
from gateway.jobs.statistics import Statistics
from gateway.redis_client import is_cluster, redis_client, text

if TYPE_CHECKING:
    from gateway.keys import Limits

SOCKET_TIMEOUT_S = 30.0
BIG_WRITE_BYTES = 1 << 20  # an upload this big is written to Redis ...
BIG_WRITES = 2  # ... with at most this many others at once (per process)


class _StoreKey:
    """A key name read from the class (the plain layout: tests and tools) or
    from a store (its own schema's: tagged on a cluster)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, store: JobStore | None, owner: type) -> Any:
        return getattr(PLAIN if store is None else store.keys, self.name)


@dataclass(eq=False)
class JobStore(Queues, Index, Statistics, Previews):
    """The job table: one object, used by the routes and the dispatchers."""

    redis: Any  # decode_responses=True: records, events, queues
    raw: Any  # bytes in, bytes out: the stored requests
    ttl_s: int
    tombstone_ttl_s: int
    kind_ids: Iterable[str]
    keep_input_s: int = 0
    keep_input_max: int = 1000
    max_queued_bytes: int = 0
    wait_replicas: int = 0  # a submit is accepted once on this many replicas
    wait_timeout_ms: int = 500
    preview_bytes: tuple[int, int] = PREVIEW_BYTES  # (per tenant, in all)
    # the event log's bounds a finish publishes with: read once, not at every finish
    retention: Retention = field(default_factory=Retention.from_env)
    keys: KeySchema = field(init=False)

    task_key = _StoreKey("task")
    events_key = _StoreKey("events")
    preview_key = _StoreKey("preview")
    LIVE_INDEXED = _StoreKey("live_indexed")

    def __post_init__(self) -> None:
        self.kind_ids = tuple(self.kind_ids)
        self.keys = KeySchema.for_client(self.redis)
        # (On a cluster WAIT would have to follow the slot's primary: not applied.)
        waits = 0 if is_cluster(self.redis) else self.wait_replicas
        self._replication = ReplicaWait(waits, self.wait_timeout_ms)
        # Big requests go to Redis a few at a time (it holds each whole in a
        # buffer until its script runs, and runs scripts one by one).
        self._big_writes = asyncio.Semaphore(BIG_WRITES)
        self._submit = self.raw.register_script(scripts.source("submit"))  # see _big_write
        self._start = self.raw.register_script(scripts.source("start"))
        finish = self.redis.register_script(scripts.source("finish"))
        self._finish = self._few_big_at_once(finish, 11)
        self._requeue = self.redis.register_script(scripts.source("requeue"))
        self._frame = self.redis.register_script(scripts.source("frame"))
        self._index_live = self.redis.register_script(scripts.source("index_live"))

    @classmethod
    def from_url(cls, url: str, *args: Any, **kwargs: Any) -> JobStore:
        """The store on REDIS_URL (gateway/redis_client.py); the rest as JobStore's."""
        # redis-py's default 5 s socket timeout would cut blocking reads (XREAD
        # BLOCK for SSE and ?wait=true): allow more than the longest block.
        options = {
            "socket_timeout": SOCKET_TIMEOUT_S,
            "socket_connect_timeout": 5,
            "health_check_interval": 30,
            # A pooled connection that died with a restarted Redis is replaced
            # and the command retried, instead of failing the request.
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            "retry_on_error": [RedisConnectionError],
        }
        return cls(
            redis_client(url, decode_responses=True, **options),
            redis_client(url, decode_responses=False, **options),
            *args,
            **kwargs,
        )

    @classmethod
    def from_settings(cls, settings, kind_ids: Iterable[str]) -> JobStore:
        """The store as a gateway's settings (GatewaySettings) describe it."""
        return cls.from_url(
            settings.redis_url,
            settings.task_ttl_s,
            settings.tombstone_ttl_s,
            kind_ids,
            settings.keep_input_s,
            settings.keep_input_max,
            settings.max_queued_bytes,
            settings.redis_wait_replicas,
            settings.redis_wait_timeout_ms,
            (settings.preview_bytes_per_tenant, settings.preview_bytes_total),
        )

    async def close(self) -> None:
        await self.redis.aclose()
        await self.raw.aclose()

    def _few_big_at_once(self, script, upload_arg: int):
        """`script`, called with at most BIG_WRITES big uploads (ARGV[upload_arg +
        1]) in flight to Redis from this process: a burst of them neither fills
        Redis' query buffers nor queues everyone else's small requests behind it."""

        async def call(keys, args):
            async with self._big_write(args[upload_arg]):
                return await script(keys=keys, args=args)

        return call

    def _big_write(self, payload: bytes) -> contextlib.AbstractAsyncContextManager:
        """A slot among BIG_WRITES for a big `payload` on its way to Redis; a
        small one needs none."""
        return self._big_writes if len(payload) >= BIG_WRITE_BYTES else contextlib.nullcontext()

    async def ensure_groups(self) -> None:
        """Create each queue's consumer group (again, after a Redis restart),
        and fill the live indexes once."""
        await self.create_groups()
        await self.index_live()

    # --- the API side ---------------------------------------------------------------
    async def submit(
        self,
        kind: str,
        media: str,
        options: dict[str, Any],
        request: bytes,
        *,
        tenant: str = DEFAULT_TENANT,
        idempotency_key: str | None = None,
        request_hash: str = "",
        inline_deadline: float | None = None,
        task_id: str | None = None,
        created_at: float | None = None,
        key_id: str = "",
        limits: Limits | None = None,
        private: bool = False,
    ) -> tuple[str, bool]:
        """Record a task and, unless it runs inline (simple mode, run by this
        API process: `inline_deadline` is when it must have ended), store its
        request and queue it. One round trip. Returns (task id, created); with an
        Idempotency-Key already used for the same request, (its task, False).
        Raises ApiError 422 when the key was used for a different request.
        A given `task_id` whose record exists already is left as it is."""
        task_id = task_id or uuid.uuid4().hex
        now = created_at or time.time()
        inline = inline_deadline is not None
        if not inline:
            quotas.fits_at_all(len(request), key_id, limits, self.max_queued_bytes)
        k = self.keys
        status = Status.RUNNING if inline else Status.QUEUED
        kind_id = f"{kind}:{media}"
        keys = [
            k.task(task_id), k.input(task_id), k.gone(task_id), k.events(task_id),
            k.queue(kind_id), k.idem(tenant, idempotency_key) if idempotency_key else k.none,
            k.inline, *quotas.usage_keys(k, key_id, limits),
            k.index, k.by_kind(kind), k.by_tenant(tenant), k.by_status(status),
            k.live(status, kind_id), k.stats(kind_id, int(now // 60)), k.task(""), k.none,
        ]  # fmt: skip
        args = [
            self.ttl_s,
            self.ttl_s + max(1, self.tombstone_ttl_s),
            task_id,
            kind,
            media,
            json.dumps(options),
            repr(now),
            repr(now + self.ttl_s),
            b"" if inline else request,
            tenant,
            request_hash,
            "inline" if inline else "queued",
            repr(inline_deadline or 0),
            limits.tasks if limits else 0,
            limits.bytes if limits else 0,
            limits.videos if limits else 0,
            self.max_queued_bytes,
            key_id,
            "1" if private else "0",
        ]
        wait_for = await self._replication.replicas(self.redis)
        async with self._big_write(args[8]):
            if wait_for:
                # WAIT counts the replicas that have this connection's writes: the
                # script and WAIT go down one connection, in one round trip.
                async with self.raw.pipeline(transaction=False) as pipe:
                    await self._submit(keys=keys, args=args, client=pipe)
                    pipe.execute_command("WAIT", wait_for, self.wait_timeout_ms)
                    (code, found, *rest), acked = await pipe.execute()
            else:
                (code, found, *rest), acked = await self._submit(keys=keys, args=args), 0
        found = text(found)
        in_use = float(rest[0]) if rest else 0.0
        quotas.check(code, found, in_use, key_id, limits, self.max_queued_bytes)
        if code == -1:
            raise ApiError(
                422,
                "idempotency_conflict",
                f"Idempotency-Key {idempotency_key!r} was used for a different request "
                f"(task {found}); use a new key for a new request",
                task_id=found,
            )
        self._replication.check(found, acked, wait_for)
        return found, code == 1

    async def cancel(self, task_id: str, tenant: str | None = None) -> tuple[Task, bool]:
        """Cancel a queued or running task. Returns (task, changed)."""
        await self.get(task_id, tenant)  # NotFound for another tenant's task
        changed = await self.finish(
            task_id, Status.CANCELLED, allowed=(Status.QUEUED, Status.RUNNING)
        )
        if changed:
            await self.redis.publish(CANCEL_CHANNEL, task_id)
        return await self.get(task_id, tenant), changed

    async def events(self, task_id: str, after: str, block_ms: int) -> list[Event]:
        reply = await self.redis.xread(
            {self.keys.events(task_id): after}, count=100, block=min(block_ms, MAX_BLOCK_MS)
        )
        out = []
        for _stream, entries in reply or ():
            for event_id, fields in entries:
                out.append(Event(event_id, fields["type"], json.loads(fields["data"])))
        return out

    # --- the dispatcher side ----------------------------------------------------------
    async def add_frame(self, task_id: str, frame: dict[str, Any], done: int, total: int) -> None:
        """Record one video frame's result and progress; a frame already
        recorded by an earlier attempt is not announced twice."""
        k = self.keys
        await self._frame(
            keys=[k.frames(task_id), k.task(task_id), k.events(task_id)],
            args=[frame["frame_index"], json.dumps(frame), done, total, self.ttl_s],
        )

    async def collected_frames(self, task_id: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(self.keys.frames(task_id))
        return [json.loads(raw[k]) for k in sorted(raw, key=int)]

    async def finish(
        self,
        task_id: str,
        status: Status,
        *,
        result: dict | str | None = None,
        error: dict | None = None,
        replica: str | None = None,
        claimed: Claimed | None = None,
        allowed: tuple[Status, ...] = (Status.RUNNING,),
        create: Task | None = None,
        preview: bytes | None = None,
    ) -> bool:
        """End a task (only from an allowed status: a cancel wins over a late
        finish), delete its stored request and frames, acknowledge its queue
        entry and drop it from the inline index. One round trip. `create`: the
        record to write whole if the task has none yet (simple mode)."""
        fields: list[Any] = []
        if create is not None:
            fields = [
                "id", task_id, "kind", create.kind, "media", create.media,
                "options", json.dumps(create.options), "created_at", repr(create.created_at),
                "expires_at", repr(create.expires_at), "tenant", create.tenant,
                "mode", create.mode, "attempts", create.attempts,
                "private", "1" if create.private else "0",
                "started_at", repr(create.started_at or create.created_at),
            ]  # fmt: skip
        now = time.time()
        args: list[Any] = [
            ",".join(allowed),
            status.value,
            json.dumps({"status": status.value, **({"error": error} if error else {})}),
            claimed.entry_id if claimed else "",
            GROUP,
            task_id,
            self.ttl_s,
            self.ttl_s + max(1, self.tombstone_ttl_s),
            repr(now),
            self.keep_input_s,
            f"{self.keep_input_max} {self.preview_bytes[0]} {self.preview_bytes[1]}",
            preview or b"",
            len(fields),
            *fields,
            "finished_at",
            repr(now),
        ]
        if result is not None:
            args += ["result", result if isinstance(result, str) else json.dumps(result)]
        if error is not None:
            args += ["error", json.dumps(error)]
        if replica:
            args += ["replica", replica]
        args += self.retention.args()
        previous = await self._finish(keys=self._finish_keys(task_id, claimed, create), args=args)
        return previous is not None

    def _finish_keys(self, task_id: str, claimed: Claimed | None, create: Task | None) -> list:
        """finish.lua's KEYS (it lists them)."""
        k = self.keys
        return [
            k.task(task_id), k.events(task_id), k.input(task_id), k.frames(task_id),
            k.queue(claimed.kind_id) if claimed else k.none, k.inline, k.gone(task_id),
            k.preview(task_id), k.none,
            k.index, k.by_kind(create.kind) if create else k.none,
            k.by_tenant(create.tenant) if create else k.none,
            *self._moves(), k.stats(""), k.usage(""), k.usage_all,
            *self.preview_keys(), k.evlog(""), k.evlog_all, k.outbox,
        ]  # fmt: skip
