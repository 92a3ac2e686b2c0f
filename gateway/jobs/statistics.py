"""The console's figures from the job table: per-minute statistics of each
kind (kept by the scripts as tasks are submitted and end; gateway/stats.py
summarizes them) and the queue figures, read from the records' own status."""

from __future__ import annotations

import time
from typing import Any

from gateway.jobs.records import Status
from gateway.jobs.schema import KeySchema


class Statistics:
    """The figures side of the job table (a part of JobStore)."""

    redis: Any
    keys: KeySchema
    ttl_s: int
    kind_ids: tuple[str, ...]

    async def stats(self, minutes: int) -> dict[str, list[dict[str, Any]]]:
        """Per kind, the last `minutes` one-minute buckets (oldest first): counts
        by outcome and run/wait histograms (see gateway/stats.py)."""
        now = int(time.time() // 60)
        window = range(now - minutes + 1, now + 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind_id in self.kind_ids:
                for minute in window:
                    pipe.hgetall(self.keys.stats(kind_id, minute))
            replies = await pipe.execute()
        out: dict[str, list[dict[str, Any]]] = {}
        for i, kind_id in enumerate(self.kind_ids):
            rows = replies[i * len(window) : (i + 1) * len(window)]
            out[kind_id] = [
                {"minute": minute * 60, **{k: int(v) for k, v in row.items()}}
                for minute, row in zip(window, rows, strict=True)
            ]
        return out

    async def queue_stats(self) -> dict[str, dict[str, float]]:
        """Per kind: tasks queued, tasks running, and the age in seconds of the
        oldest queued one since it was accepted (0 when none). Read from the
        records' own status (the live indexes), not from a consumer group's
        lag, which goes stale when a group is recreated: these agree with
        /api/tasks?status=queued. A few O(log n) reads, one round trip."""
        horizon = time.time() - self.ttl_s
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind_id in self.kind_ids:
                queued = self.keys.live(Status.QUEUED, kind_id)
                pipe.zcount(queued, horizon, "+inf")
                pipe.zcount(self.keys.live(Status.RUNNING, kind_id), horizon, "+inf")
                pipe.zrangebyscore(queued, horizon, "+inf", start=0, num=1, withscores=True)
            replies = await pipe.execute()
        now = time.time()
        stats = {}
        for i, kind_id in enumerate(self.kind_ids):
            waiting, running, first = replies[3 * i : 3 * i + 3]
            stats[kind_id] = {
                "waiting": int(waiting),
                "running": int(running),
                "oldest_waiting_s": max(0.0, now - float(first[0][1])) if first else 0.0,
            }
        return stats
