"""The Redis job table: task records, their inputs, events, queues and leases.

Layout (prefix `percept:`):
- `task:{id}`    hash: the task record (expires after the task TTL);
- `input:{id}`   the uploaded bytes, deleted when the task ends;
- `events:{id}`  stream of status / progress / frame events (SSE reads it);
- `frames:{id}`  hash frame_index -> frame result while a video runs;
- `gone:{id}`    tombstone outliving the record, so an expired id is 410;
- `idem:{key}`   Idempotency-Key -> task id;
- `tasks`        sorted set of ids by creation time, for listing;
- `queue:{kind}` stream per kind, read by dispatchers through one consumer
  group; an entry is acknowledged (and deleted) only when its task ended, and
  one idle past the lease is claimed by another dispatcher.
Status changes go through one Lua script, so cancel, finish and retry cannot
overwrite each other.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

PREFIX = "percept:"
GROUP = "dispatchers"
KINDS = ("face_detection", "object_detection")
MEDIA = ("image", "video")
CANCEL_CHANNEL = PREFIX + "cancel"
SOCKET_TIMEOUT_S = 30.0
MAX_BLOCK_MS = 10_000  # every blocking read stays well under the socket timeout


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

# KEYS: task, events. ARGV: allowed statuses (csv), new status, event json, then field/value pairs.
_TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return nil end
for allowed in string.gmatch(ARGV[1], '[^,]+') do
  if current == allowed then
    redis.call('HSET', KEYS[1], 'status', ARGV[2], unpack(ARGV, 4))
    redis.call('XADD', KEYS[2], '*', 'type', 'status', 'data', ARGV[3])
    return current
  end
end
return false
"""


# KEYS: task, input, tombstone, index, events, queue.
# ARGV: ttl, tombstone ttl, id, kind, media, options, created_at, expires_at, input, queued event.
_SUBMIT = """
redis.call('HSET', KEYS[1], 'id', ARGV[3], 'kind', ARGV[4], 'media', ARGV[5], 'status', 'queued',
           'options', ARGV[6], 'created_at', ARGV[7], 'expires_at', ARGV[8], 'attempts', 0)
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[9], 'EX', ARGV[1])
redis.call('SET', KEYS[3], '1', 'EX', ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[3])
redis.call('XADD', KEYS[5], '*', 'type', 'status', 'data', ARGV[10])
redis.call('EXPIRE', KEYS[5], ARGV[1])
redis.call('XADD', KEYS[6], '*', 'task_id', ARGV[3])
return 1
"""


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts else None


@dataclass
class Task:
    id: str
    kind: str
    media: str
    status: Status
    created_at: float
    expires_at: float
    options: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    progress_done: int = 0
    progress_total: int = 0
    attempts: int = 0
    result: dict | None = None
    error: dict | None = None

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Task:
        def num(key: str) -> float | None:
            value = raw.get(key)
            return float(value) if value not in (None, "") else None

        return cls(
            id=raw["id"],
            kind=raw["kind"],
            media=raw["media"],
            status=Status(raw["status"]),
            created_at=float(raw["created_at"]),
            expires_at=float(raw["expires_at"]),
            options=json.loads(raw.get("options") or "{}"),
            started_at=num("started_at"),
            finished_at=num("finished_at"),
            progress_done=int(raw.get("progress_done") or 0),
            progress_total=int(raw.get("progress_total") or 0),
            attempts=int(raw.get("attempts") or 0),
            result=json.loads(raw["result"]) if raw.get("result") else None,
            error=json.loads(raw["error"]) if raw.get("error") else None,
        )

    def to_json(self, status_url: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "task_id": self.id,
            "kind": self.kind,
            "media": self.media,
            "status": self.status.value,
            "progress": {"done": self.progress_done, "total": self.progress_total or None},
            "attempts": self.attempts,
            "options": self.options,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "expires_at": _iso(self.expires_at),
        }
        if status_url:
            body["status_url"] = status_url
        if self.result is not None:
            body["result"] = self.result
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    data: dict[str, Any]


class TaskGone(Exception):
    """The id existed but its record expired."""


class TaskNotFound(Exception):
    """No task ever had this id (or its tombstone expired too)."""


class JobStore:
    """The job table: one class, used by the routes and the dispatchers."""

    @classmethod
    def from_url(cls, url: str, ttl_s: int, tombstone_ttl_s: int) -> JobStore:
        # redis-py's default 5 s socket timeout would cut blocking reads (XREAD
        # BLOCK for SSE and ?wait=true): allow more than the longest block.
        options = {
            "socket_timeout": SOCKET_TIMEOUT_S,
            "socket_connect_timeout": 5,
            "health_check_interval": 30,
        }
        return cls(
            aioredis.from_url(url, decode_responses=True, **options),
            aioredis.from_url(url, **options),
            ttl_s,
            tombstone_ttl_s,
        )

    async def close(self) -> None:
        await self.redis.aclose()
        await self.raw.aclose()

    def __init__(
        self, redis: aioredis.Redis, raw: aioredis.Redis, ttl_s: int, tombstone_ttl_s: int
    ) -> None:
        self.redis = redis  # decode_responses=True: records, events, queues
        self.raw = raw  # bytes in, bytes out: the uploaded inputs
        self.ttl_s = ttl_s
        self.tombstone_ttl_s = tombstone_ttl_s
        self._transition = redis.register_script(_TRANSITION)
        self._submit = redis.register_script(_SUBMIT)

    # --- keys ---------------------------------------------------------------------
    @staticmethod
    def task_key(task_id: str) -> str:
        return f"{PREFIX}task:{task_id}"

    @staticmethod
    def queue_key(kind: str) -> str:
        return f"{PREFIX}queue:{kind}"

    @staticmethod
    def events_key(task_id: str) -> str:
        return f"{PREFIX}events:{task_id}"

    # --- set-up ---------------------------------------------------------------------
    async def ensure_groups(self) -> None:
        for kind in KINDS:
            try:
                await self.redis.xgroup_create(self.queue_key(kind), GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # --- the API side ---------------------------------------------------------------
    async def submit(
        self,
        kind: str,
        media: str,
        options: dict[str, Any],
        data: bytes,
        idempotency_key: str | None = None,
    ) -> tuple[Task, bool]:
        """Store a task and its input and queue it. Returns (task, created);
        with an Idempotency-Key already used, the existing task and False."""
        task_id = uuid.uuid4().hex
        if idempotency_key:
            idem = f"{PREFIX}idem:{idempotency_key}"
            if not await self.redis.set(idem, task_id, nx=True, ex=self.ttl_s):
                existing = await self.redis.get(idem)
                if existing:
                    try:
                        return await self.get(existing), False
                    except (TaskGone, TaskNotFound):
                        pass
                await self.redis.set(idem, task_id, ex=self.ttl_s)
        now = time.time()
        task = Task(task_id, kind, media, Status.QUEUED, now, now + self.ttl_s, options)
        # One script, one round trip: the record, the input, the tombstone, the
        # index entry, the first event and the queue entry appear together.
        await self._submit(
            keys=[
                self.task_key(task_id),
                f"{PREFIX}input:{task_id}",
                f"{PREFIX}gone:{task_id}",
                f"{PREFIX}tasks",
                self.events_key(task_id),
                self.queue_key(kind),
            ],
            args=[
                self.ttl_s,
                self.ttl_s + max(1, self.tombstone_ttl_s),
                task_id,
                kind,
                media,
                json.dumps(options),
                repr(now),
                repr(task.expires_at),
                data,
                json.dumps({"status": "queued"}),
            ],
        )
        return task, True

    async def get(self, task_id: str) -> Task:
        raw = await self.redis.hgetall(self.task_key(task_id))
        if raw:
            return Task.from_hash(raw)
        if await self.redis.exists(f"{PREFIX}gone:{task_id}"):
            raise TaskGone(task_id)
        raise TaskNotFound(task_id)

    async def list(
        self, status: str | None, kind: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Task], str | None]:
        """Newest first; `cursor` is the creation time of the last task seen."""
        index = f"{PREFIX}tasks"
        await self.redis.zremrangebyscore(index, "-inf", time.time() - self.ttl_s)
        upper = f"({cursor}" if cursor else "+inf"
        found: list[Task] = []
        next_cursor = None
        while len(found) < limit:
            rows = await self.redis.zrevrangebyscore(
                index, upper, "-inf", start=0, num=100, withscores=True
            )
            if not rows:
                next_cursor = None
                break
            async with self.redis.pipeline(transaction=False) as pipe:
                for task_id, _ in rows:
                    pipe.hgetall(self.task_key(task_id))
                records = await pipe.execute()
            for (task_id, score), raw in zip(rows, records, strict=True):
                upper = f"({score!r}"
                if not raw:
                    await self.redis.zrem(index, task_id)
                    continue
                task = Task.from_hash(raw)
                if (status and task.status != status) or (kind and task.kind != kind):
                    continue
                found.append(task)
                next_cursor = repr(score)
                if len(found) == limit:
                    break
            if len(rows) < 100 and len(found) < limit:
                next_cursor = None
                break
        return found, next_cursor

    async def cancel(self, task_id: str) -> tuple[Task, bool]:
        """Cancel a queued or running task. Returns (task, changed)."""
        changed = await self.transition(
            task_id, (Status.QUEUED, Status.RUNNING), Status.CANCELLED, finished_at=time.time()
        )
        if changed:
            await self.redis.delete(f"{PREFIX}input:{task_id}")
            await self.redis.publish(CANCEL_CHANNEL, task_id)
        return await self.get(task_id), bool(changed)

    async def events(self, task_id: str, after: str, block_ms: int) -> list[Event]:
        reply = await self.redis.xread(
            {self.events_key(task_id): after}, count=100, block=min(block_ms, MAX_BLOCK_MS)
        )
        out = []
        for _stream, entries in reply or ():
            for event_id, fields in entries:
                out.append(Event(event_id, fields["type"], json.loads(fields["data"])))
        return out

    # --- the dispatcher side ----------------------------------------------------------
    async def transition(
        self, task_id: str, allowed, new: Status, event: dict | None = None, **fields
    ) -> str | None:
        """Compare-and-set the status; returns the previous status, or None
        when the task is gone or not in an allowed status."""
        args: list[Any] = [
            ",".join(allowed),
            new.value,
            json.dumps({"status": new.value, **(event or {})}),
        ]
        for key, value in fields.items():
            args += [
                key,
                value
                if isinstance(value, str)
                else json.dumps(value)
                if isinstance(value, dict)
                else repr(value),
            ]
        previous = await self._transition(
            keys=[self.task_key(task_id), self.events_key(task_id)], args=args
        )
        return previous or None

    async def claim(
        self, kind: str, consumer: str, lease_ms: int, block_ms: int
    ) -> tuple[str, str] | None:
        """Next queue entry for this consumer: one whose lease ran out, else a new one."""
        queue = self.queue_key(kind)
        _next, claimed, *_ = await self.redis.xautoclaim(
            queue, GROUP, consumer, lease_ms, start_id="0-0", count=1
        )
        for entry_id, fields in claimed:
            if fields:
                return entry_id, fields["task_id"]
            await self.redis.xack(
                queue, GROUP, entry_id
            )  # deleted entry: drop its stale pending record
        reply = await self.redis.xreadgroup(
            GROUP, consumer, {queue: ">"}, count=1, block=min(block_ms, MAX_BLOCK_MS)
        )
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                return entry_id, fields["task_id"]
        return None

    async def heartbeat(self, kind: str, consumer: str, entry_id: str) -> None:
        """Renew the lease: claiming the entry for ourselves resets its idle time."""
        await self.redis.xclaim(self.queue_key(kind), GROUP, consumer, 0, [entry_id], justid=True)

    async def ack(self, kind: str, entry_id: str) -> None:
        queue = self.queue_key(kind)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(queue, GROUP, entry_id)
            pipe.xdel(queue, entry_id)
            await pipe.execute()

    async def start(self, task_id: str) -> Task | None:
        """Mark a task running for one more attempt; None when it is gone or ended."""
        if not await self.transition(
            task_id, (Status.QUEUED, Status.RUNNING), Status.RUNNING, started_at=time.time()
        ):
            return None
        await self.redis.hincrby(self.task_key(task_id), "attempts", 1)
        return await self.get(task_id)

    async def requeue(self, task_id: str) -> None:
        """A dispatcher shutting down hands its task back (claimed after the lease)."""
        await self.transition(task_id, (Status.RUNNING,), Status.QUEUED)

    async def input(self, task_id: str) -> bytes | None:
        return await self.raw.get(f"{PREFIX}input:{task_id}")

    async def add_frame(self, task_id: str, frame: dict[str, Any], done: int, total: int) -> None:
        """Record one video frame's result and progress; a frame already
        recorded by an earlier attempt is not announced twice."""
        frames = f"{PREFIX}frames:{task_id}"
        events = self.events_key(task_id)
        is_new = await self.redis.hsetnx(frames, str(frame["frame_index"]), json.dumps(frame))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.expire(frames, self.ttl_s)
            pipe.hset(
                self.task_key(task_id), mapping={"progress_done": done, "progress_total": total}
            )
            if is_new:
                pipe.xadd(events, {"type": "frame", "data": json.dumps(frame)})
            pipe.xadd(
                events,
                {"type": "progress", "data": json.dumps({"done": done, "total": total or None})},
            )
            await pipe.execute()

    async def collected_frames(self, task_id: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(f"{PREFIX}frames:{task_id}")
        return [json.loads(raw[k]) for k in sorted(raw, key=int)]

    async def finish(
        self, task_id: str, status: Status, *, result: dict | None = None, error: dict | None = None
    ) -> bool:
        """End a running task (only if still running: a cancel wins)."""
        fields: dict[str, Any] = {"finished_at": time.time()}
        event: dict[str, Any] = {}
        if result is not None:
            fields["result"] = json.dumps(result)
        if error is not None:
            fields["error"] = json.dumps(error)
            event["error"] = error
        changed = await self.transition(task_id, (Status.RUNNING,), status, event, **fields)
        await self.redis.delete(f"{PREFIX}input:{task_id}", f"{PREFIX}frames:{task_id}")
        return bool(changed)

    async def fail_unstarted(self, task_id: str, error: dict) -> None:
        """Fail a task that cannot be run (its input is gone, attempts are spent)."""
        await self.transition(
            task_id,
            (Status.QUEUED, Status.RUNNING),
            Status.FAILED,
            {"error": error},
            finished_at=time.time(),
            error=error,
        )
        await self.redis.delete(f"{PREFIX}input:{task_id}", f"{PREFIX}frames:{task_id}")

    async def queue_stats(self) -> dict[str, dict[str, float]]:
        """Per kind: entries waiting for a dispatcher, entries being run, and the
        age in seconds of the oldest waiting one."""
        stats = {}
        for kind in KINDS:
            queue = self.queue_key(kind)
            waiting = running = 0
            oldest = 0.0
            try:
                for group in await self.redis.xinfo_groups(queue):
                    if group["name"] != GROUP:
                        continue
                    waiting = int(group.get("lag") or 0)
                    running = int(group.get("pending") or 0)
                    if waiting:
                        first = await self.redis.xrange(
                            queue, f"({group['last-delivered-id']}", "+", count=1
                        )
                        if first:
                            oldest = max(0.0, time.time() - int(first[0][0].split("-")[0]) / 1000)
            except ResponseError:
                pass
            stats[kind] = {"waiting": waiting, "running": running, "oldest_waiting_s": oldest}
        return stats
