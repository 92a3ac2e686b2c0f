"""The worker's share of the sources: leases in Redis.

Every worker heartbeats into one sorted set and reads the sources every
poll_s. A source's lease is a Redis key holding its worker's id, set with NX
and a TTL (lease_s), renewed on every poll only by its holder (a script
checks the holder): a source runs on one worker at a time, and a worker that
dies loses its leases when they expire, after which another takes them.

Who should run what is rendezvous hashing over the live workers: each worker
takes the sources that hash to it, gives back those that hash to another live
worker (so a new worker gets its share), and takes any source left without a
lease for a poll or two (its preferred worker is gone or slow).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from gateway import sources
from gateway.backends import Backends
from source_worker import metrics
from source_worker.runner import SourceRunner
from source_worker.settings import WorkerSettings

logger = logging.getLogger(__name__)

# KEYS: lease. ARGV: worker id, ttl ms. 1 when renewed (still ours).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: lease. ARGV: worker id. Deleted only when ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def preferred(source_id: str, workers: list[str]) -> str | None:
    """The live worker a source hashes to (rendezvous hashing)."""
    if not workers:
        return None
    return max(workers, key=lambda w: hashlib.sha1(f"{source_id}|{w}".encode()).digest())


class SourceWorker:
    def __init__(self, settings: WorkerSettings, redis, raw, backends: Backends) -> None:
        self.settings = settings
        self.redis = redis
        self.raw = raw
        self.keys = sources.SourceKeys.for_client(redis)  # tagged on a cluster
        self.backends = backends
        self.id = settings.worker_id
        self.running: dict[str, SourceRunner] = {}
        self._free_since: dict[str, float] = {}
        self._stopping: set[asyncio.Task] = set()
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self.ttl_ms = int(settings.lease_s * 1000)

    async def run(self, stop: asyncio.Event) -> None:
        logger.info("source worker %s started", self.id)
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                    _touch(self.settings.heartbeat_file)
                except Exception:  # noqa: BLE001 - Redis down: keep running what we hold
                    logger.exception("source worker %s: cannot read the sources", self.id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.poll_s)
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Stop every source and give its lease back, so another worker takes
        it at once (not after the lease expires)."""
        for source_id in list(self.running):
            await self._stop(source_id, release=True)
        await asyncio.gather(*self._stopping, return_exceptions=True)
        with contextlib.suppress(Exception):  # Redis gone: the heartbeat expires
            await self.redis.zrem(self.keys.workers, self.id)

    async def tick(self) -> None:
        now = time.time()
        await self.redis.zadd(self.keys.workers, {self.id: now})
        await self.redis.zremrangebyscore(self.keys.workers, 0, now - 10 * self.settings.lease_s)
        live = await self.redis.zrangebyscore(
            self.keys.workers, now - self.settings.lease_s, "+inf"
        )
        ids = sorted(await self.redis.smembers(self.keys.all))
        records: dict[str, dict[str, Any]] = {}
        if ids:
            for raw in await self.redis.mget([self.keys.source(s) for s in ids]):
                if raw is not None:
                    record = json.loads(raw)
                    records[record["id"]] = record
        # What we run: still ours, still wanted, still the same?
        for source_id, runner in list(self.running.items()):
            record = records.get(source_id)
            if record is None or record.get("paused"):
                await self._stop(source_id, release=True)
                continue
            if not await self._renew(
                keys=[self.keys.lease(source_id)], args=[self.id, self.ttl_ms]
            ):
                logger.warning("source %s: lease lost, stopping it here", source_id)
                await self._stop(source_id, release=False)
                continue
            if runner.done:
                continue  # an ended file: keep the lease, so no one starts it again
            if record["revision"] != runner.revision and not runner.update(record):
                await self._stop(source_id, release=False)
                await self._start(record)
                continue
            owner = preferred(source_id, live)
            if owner is not None and owner != self.id:
                logger.info("source %s: handing it to %s", source_id, owner)
                await self._stop(source_id, release=True)
        # What we could take.
        candidates = [
            s for s, r in records.items() if s not in self.running and not r.get("paused")
        ]
        if not candidates:
            return
        holders = await self.redis.mget([self.keys.lease(s) for s in candidates])
        for source_id, holder in zip(candidates, holders, strict=True):
            if holder is not None:
                self._free_since.pop(source_id, None)
                continue
            free_since = self._free_since.setdefault(source_id, now)
            mine = preferred(source_id, live) == self.id
            if not mine and now - free_since < 2 * self.settings.poll_s + 0.5:
                continue  # leave it to its worker a moment
            if await self.redis.set(self.keys.lease(source_id), self.id, nx=True, px=self.ttl_ms):
                self._free_since.pop(source_id, None)
                await self._start(records[source_id])

    async def _start(self, record: dict[str, Any]) -> None:
        runner = SourceRunner(record, self.settings, self.redis, self.raw, self.backends, self.id)
        self.running[record["id"]] = runner
        metrics.RUNNING.set(len(self.running))
        try:
            await runner.start()
        except Exception as exc:  # noqa: BLE001 - a bad record must not stop the worker
            logger.exception("source %s cannot start", record["id"])
            await self.redis.hset(
                self.keys.status(record["id"]),
                mapping={"state": "failed", "reason": f"cannot start: {exc}", "worker": self.id},
            )

    async def _stop(self, source_id: str, *, release: bool) -> None:
        """Stop a source in the background: its processing is cancelled at once,
        its reader thread may take a read timeout to notice, and the poll must
        go on meanwhile (or the other leases would lapse)."""
        runner = self.running.pop(source_id)
        metrics.RUNNING.set(len(self.running))
        task = asyncio.create_task(self._finish(source_id, runner, release))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _finish(self, source_id: str, runner: SourceRunner, release: bool) -> None:
        try:
            await runner.stop()
            if source_id not in self.running:  # not started again meanwhile
                metrics.forget(source_id)
        finally:
            if release:
                with contextlib.suppress(Exception):  # Redis gone: the lease expires
                    await self._release(keys=[self.keys.lease(source_id)], args=[self.id])


def _touch(path: str) -> None:
    with contextlib.suppress(OSError):
        Path(path).touch()
