"""Reading the job table: a record, a page of the list (newest first, from
the most selective index), the console's search, counts by status; and the
chores that keep the indexes true (pruning, the live indexes' first fill)."""

from __future__ import annotations

import time
from typing import Any

from gateway.errors import TaskGone, TaskNotFound
from gateway.jobs.records import DEFAULT_TENANT, Status, Task
from gateway.jobs.schema import KeySchema

SCAN_BATCH = 1000


class Index:
    """The read side of the job table (a part of JobStore)."""

    redis: Any
    keys: KeySchema
    ttl_s: int
    _index_live: Any

    async def raw_records(self, task_ids) -> list[dict[str, str]]:
        """The record hashes of these ids (one pipelined round trip), {} where gone."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hgetall(self.keys.task(task_id))
            return await pipe.execute()

    async def get(self, task_id: str, tenant: str | None = None) -> Task:
        """A task; another tenant's is NotFound (None: any tenant, for admins)."""
        raw = await self.redis.hgetall(self.keys.task(task_id))
        if raw and (tenant is None or raw.get("tenant", DEFAULT_TENANT) == tenant):
            return Task.from_hash(raw)
        if not raw and await self.redis.exists(self.keys.gone(task_id)):
            raise TaskGone(task_id)
        raise TaskNotFound(task_id)

    async def list(
        self,
        status: str | None,
        kind: str | None,
        limit: int,
        cursor: str | None,
        tenant: str | None = None,
        *,
        media: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> tuple[list[Task], str | None]:
        """Newest first, from the most selective index among the filters (by
        status, kind or tenant), so a filtered page reads few records however
        many tasks there are. `cursor` is the creation time of the last task
        seen; since/until bound the creation time (Unix seconds)."""
        k = self.keys
        indexes = [k.index]
        if status:
            indexes.append(k.by_status(status))
        if kind:
            indexes.append(k.by_kind(kind))
        if tenant is not None:
            indexes.append(k.by_tenant(tenant))
        if len(indexes) > 1:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in indexes:
                    pipe.zcard(key)
                sizes = await pipe.execute()
            index = min(zip(sizes, indexes, strict=True))[1]
        else:
            index = k.index
        lower = repr(max(since or 0.0, time.time() - self.ttl_s))
        upper = f"({cursor}" if cursor else (repr(until) if until else "+inf")
        batch = min(500, max(2 * limit, 50))
        found: list[Task] = []
        while len(found) < limit:
            rows = await self.redis.zrevrangebyscore(
                index, upper, lower, start=0, num=batch, withscores=True
            )
            if not rows:
                return found, None
            records = await self.raw_records(task_id for task_id, _ in rows)
            for (_task_id, score), raw in zip(rows, records, strict=True):
                upper = f"({score!r}"
                if not raw:
                    continue
                task = Task.from_hash(raw)
                if (
                    (status and task.status != status)
                    or (kind and task.kind != kind)
                    or (media and task.media != media)
                    or (tenant is not None and task.tenant != tenant)
                ):
                    continue
                found.append(task)
                if len(found) == limit:
                    return found, repr(score)
            if len(rows) < batch:
                return found, None
        return found, None

    async def find(self, prefix: str, limit: int, tenant: str | None = None) -> list[Task]:
        """Tasks whose id starts with `prefix` (the console's search box), newest first."""
        if len(prefix) == 32:
            try:
                return [await self.get(prefix, tenant)]
            except (TaskGone, TaskNotFound):
                return []
        ids: list[str] = []
        async for task_id, _score in self.redis.zscan_iter(
            self.keys.index, match=f"{prefix}*", count=SCAN_BATCH
        ):
            ids.append(task_id)
            if len(ids) >= 10 * limit:
                break
        found = map(Task.from_hash, filter(None, await self.raw_records(ids)))
        tasks = [t for t in found if tenant is None or t.tenant == tenant]
        return sorted(tasks, key=lambda t: t.created_at, reverse=True)[:limit]

    async def counts(self) -> dict[str, int]:
        """Tasks by status, from the indexes (records not yet expired)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for status in Status:
                pipe.zcount(self.keys.by_status(status), time.time() - self.ttl_s, "+inf")
            values = await pipe.execute()
        return {status.value: int(v) for status, v in zip(Status, values, strict=True)}

    async def prune_indexes(self) -> None:
        """Drop index entries of tasks whose records expired (a periodic chore)."""
        horizon = time.time() - self.ttl_s
        keys = [self.keys.index]
        async for key in self._scan(f"{self.keys.index}:*"):
            keys.append(key)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zremrangebyscore(key, "-inf", horizon)
            await pipe.execute()

    def _scan(self, match: str):
        """The keys matching `match` (SCAN; on a cluster, every primary's)."""
        return self.redis.scan_iter(match=match, count=SCAN_BATCH)

    async def index_live(self) -> None:
        """Once per Redis data set (a marker key says it was done): the tasks
        queued or running before the live indexes existed go into them."""
        k = self.keys
        if await self.redis.exists(k.live_indexed):
            return
        for status in (Status.QUEUED, Status.RUNNING):
            index, lower, seen = k.by_status(status), "-inf", set()
            while True:  # by score, so ids moving out meanwhile skip none
                rows = await self.redis.zrangebyscore(
                    index, lower, "+inf", start=0, num=SCAN_BATCH, withscores=True
                )
                fresh = [task_id for task_id, _ in rows if task_id not in seen]
                if fresh:
                    await self._index_live(
                        keys=[k.live(status, ""), *map(k.task, fresh)],
                        args=[status.value, *fresh],
                    )
                if len(rows) < SCAN_BATCH or not fresh:
                    break
                lower = repr(rows[-1][1])
                seen = {task_id for task_id, score in rows if score == rows[-1][1]}
        await self.redis.set(k.live_indexed, "1")
