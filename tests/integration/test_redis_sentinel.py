"""Redis that survives losing its primary (real redis-server processes on loopback).

- A submit is answered only once a replica holds the task (Redis WAIT): a
  replica that stops answering turns submits into 503 `store_unreplicated`,
  and a primary left without replicas accepts at once rather than stalling."""

from __future__ import annotations

import asyncio
import signal

import pytest

from gateway.errors import ApiError
from gateway.jobs import JobStore
from gateway.kinds import KINDS
from tests.redis_ha import RedisNode, wait_until

pytestmark = pytest.mark.slow


def test_a_submit_waits_for_a_replica_and_never_stalls_without_one(tmp_path):
    primary = RedisNode(tmp_path).start()
    replica = RedisNode(tmp_path, replica_of=primary.port).start()
    url = f"redis://127.0.0.1:{primary.port}/0"

    async def scenario() -> None:
        store = JobStore.from_url(
            url, 60, 60, [k.id for k in KINDS], wait_replicas=1, wait_timeout_ms=300
        )

        async def submit() -> str:
            task_id, created = await store.submit("face_detection", "image", {}, b"request")
            assert created
            return task_id

        try:
            await store.ensure_groups()
            for _ in range(20):  # answered only once the replica holds it
                assert replica.client.exists(JobStore.task_key(await submit())) == 1

            replica.signal(signal.SIGSTOP)  # connected, but silent: WAIT runs out
            with pytest.raises(ApiError) as refused:
                await submit()
            assert (refused.value.status, refused.value.code) == (503, "store_unreplicated")
            assert refused.value.headers["Retry-After"]
            assert "Idempotency-Key" in refused.value.message
            replica.signal(signal.SIGCONT)
            await submit()

            replica.stop()  # gone: the primary has none left, and accepts at once
            wait_until(
                lambda: primary.client.info("replication")["connected_slaves"] == 0,
                10,
                "the primary to notice its replica is gone",
            )
            outcomes = []
            for _ in range(10):
                try:
                    outcomes.append(await submit() and "accepted")
                except ApiError as exc:
                    outcomes.append(exc.code)
            # At most the first finds the replica still counted (a count is
            # kept a second); then every submit is accepted.
            assert outcomes[1:] == ["accepted"] * 9, outcomes
        finally:
            await store.close()

    try:
        asyncio.run(scenario())
    finally:
        replica.stop()
        primary.stop()
