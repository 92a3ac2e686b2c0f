"""The queue figures' cost (JobStore.queue_stats, read by every console's
overview poll and every /metrics scrape) with an empty job table and with
--tasks queued tasks, side by side: the live indexes make it a few O(log n)
reads in one round trip, so it stays flat however long the queue.

Uses database 14 of REDIS_URL's Redis (emptied first and at the end).

python -m bench.queue_stats_bench [--tasks 100000] [--reads 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from bench.common import report
from gateway.jobs import JobStore
from gateway.kinds import KINDS


async def read_ms(store: JobStore, reads: int) -> float:
    """Median milliseconds of one queue_stats call."""
    times = []
    for _ in range(reads):
        start = time.perf_counter()
        await store.queue_stats()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def main(tasks: int, reads: int) -> None:
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    store = JobStore.from_url(f"{base}/14", 86_400, 604_800, [k.id for k in KINDS])
    await store.redis.flushdb()
    try:
        await store.ensure_groups()
        empty = await read_ms(store, reads)
        start = time.perf_counter()
        for first in range(0, tasks, 50):  # within the client's connection pool
            await asyncio.gather(*(
                store.submit("face_detection", "image", {}, b"x")
                for _ in range(first, min(tasks, first + 50))
            ))  # fmt: skip
        print(f"{tasks:,} tasks queued in {time.perf_counter() - start:.1f} s")
        stats = await store.queue_stats()
        assert stats["face_detection:image"]["waiting"] == tasks, stats
        full = await read_ms(store, reads)
        report(f"queue_stats, empty vs {tasks:,} queued (median ms)", full, empty, "ms")
    finally:
        await store.redis.flushdb()
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.reads))
