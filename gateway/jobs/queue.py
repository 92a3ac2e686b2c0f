"""The queues: a stream per task kind, read by the dispatchers through one
consumer group, each entry leased to the dispatcher that read it; and the
starts and hand-backs of the attempts they run."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from redis.exceptions import ResponseError

from gateway.jobs.records import DEFAULT_TENANT, Claimed, Started, Status
from gateway.jobs.schema import KeySchema
from gateway.redis_client import text

GROUP = "dispatchers"
MAX_BLOCK_MS = 10_000  # every blocking read stays well under the socket timeout


class Queues:
    """The dispatcher side of the job table (a part of JobStore)."""

    redis: Any
    keys: KeySchema
    kind_ids: tuple[str, ...]
    _start: Any
    _requeue: Any

    async def create_groups(self) -> None:
        """Create each queue's consumer group (again, after a Redis restart)."""
        for kind_id in self.kind_ids:
            try:
                await self.redis.xgroup_create(
                    self.keys.queue(kind_id), GROUP, id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def groups_ready(self) -> bool:
        """Whether every queue has its consumer group (dispatch can proceed)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind_id in self.kind_ids:
                pipe.xinfo_groups(self.keys.queue(kind_id))
            replies = await pipe.execute(raise_on_error=False)
        return all(
            not isinstance(reply, Exception) and any(g["name"] == GROUP for g in reply)
            for reply in replies
        )

    async def read_new(
        self, kind_ids: Iterable[str], consumer: str, count: int, block_ms: int
    ) -> list[Claimed]:
        """New entries for this consumer from several kinds' queues at once."""
        streams = {self.keys.queue(k): ">" for k in kind_ids}
        reply = await self.redis.xreadgroup(
            GROUP, consumer, streams, count=count, block=min(block_ms, MAX_BLOCK_MS)
        )
        out = []
        for stream, entries in reply or ():
            kind_id = self.keys.kind_of_queue(stream)
            for entry_id, fields in entries:
                out.append(Claimed(kind_id, entry_id, fields["task_id"]))
        return out

    async def reclaim(
        self, kind_id: str, consumer: str, lease_ms: int, count: int
    ) -> list[Claimed]:
        """Entries whose dispatcher went silent for a lease, now this consumer's."""
        queue = self.keys.queue(kind_id)
        _next, claimed, *_ = await self.redis.xautoclaim(
            queue, GROUP, consumer, lease_ms, start_id="0-0", count=count
        )
        out = []
        for entry_id, fields in claimed:
            if fields:
                out.append(Claimed(kind_id, entry_id, fields["task_id"]))
            else:  # a deleted entry: drop its stale pending record
                await self.redis.xack(queue, GROUP, entry_id)
        return out

    async def renew(self, kind_id: str, consumer: str, entry_ids: list[str]) -> None:
        """Renew leases: claiming entries for ourselves resets their idle time."""
        if entry_ids:
            await self.redis.xclaim(
                self.keys.queue(kind_id), GROUP, consumer, 0, entry_ids, justid=True
            )

    async def ack(self, claimed: Claimed) -> None:
        queue = self.keys.queue(claimed.kind_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(queue, GROUP, claimed.entry_id)
            pipe.xdel(queue, claimed.entry_id)
            await pipe.execute()

    def _moves(self) -> list[str]:
        """The key families a status change between queued and running touches
        (start.lua, requeue.lua): the status indexes, the live ones."""
        k = self.keys
        return [k.by_status(""), k.live(Status.QUEUED, ""), k.live(Status.RUNNING, "")]

    async def start(self, task_id: str, max_attempts: int) -> Started:
        """Mark a task running for one more attempt and fetch its request (one
        round trip); see Started for what comes back."""
        k = self.keys
        reply = await self._start(
            keys=[k.task(task_id), k.events(task_id), k.input(task_id), *self._moves()],
            args=[repr(time.time()), max_attempts],
        )
        code = int(reply[0])
        if code != 1:
            return Started(code, int(reply[1]) if len(reply) > 1 else 0)
        tenant = text(reply[4]) if len(reply) > 4 and reply[4] else DEFAULT_TENANT
        return Started(code, int(reply[1]), reply[2], float(reply[3]), tenant)

    async def requeue(self, task_id: str) -> None:
        """A dispatcher shutting down hands its task back (claimed after the lease)."""
        await self._requeue(keys=[self.keys.task(task_id), *self._moves()])

    async def overdue_inline(self, now: float, count: int = 100) -> list[str]:
        """Inline tasks that should have ended by now (their API process died)."""
        return await self.redis.zrangebyscore(self.keys.inline, "-inf", now, start=0, num=count)
