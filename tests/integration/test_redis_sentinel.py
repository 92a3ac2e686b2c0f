"""Redis that survives losing its primary: a primary, a replica and three
sentinels on loopback (real redis-server and redis-sentinel processes).

- A submit is answered only once a replica holds the task (Redis WAIT): a
  replica that stops answering turns submits into 503 `store_unreplicated`,
  and a primary left without replicas accepts at once rather than stalling.
- 1,000 tasks from 16 clients while the primary is SIGKILLed in the middle:
  the gateway follows the sentinels to the new primary by itself, every task
  answered 202 succeeds exactly once, submits in between get 503 with
  Retry-After (never a 500), and /readyz says so while it lasts."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import httpx
import numpy as np
import pytest
import redis

from gateway.errors import ApiError
from gateway.jobs import JobStore
from gateway.kinds import KINDS
from harness import faces
from tests.redis_ha import RedisNode, SentinelSetup, wait_until
from tests.support import GatewayProcess, free_port, gateway_keys

pytestmark = pytest.mark.slow

TASKS = 1000
CLIENTS = 16
KILL_AFTER = 300  # tasks accepted before the primary is killed


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


def test_gateway_keys_says_what_is_wrong_with_a_sentinel_url():
    bad = gateway_keys("list", redis_url="redis+sentinel://127.0.0.1:1")
    assert bad.returncode == 2 and "must name the sentinels and the master" in bad.stderr
    assert "Traceback" not in bad.stderr
    down = gateway_keys("list", redis_url=f"redis+sentinel://127.0.0.1:{free_port()}/percept/0")
    assert down.returncode == 3 and "Traceback" not in down.stderr
    assert down.stderr.count("\n") == 1 and "names a primary for 'percept'" in down.stderr


@pytest.fixture
def tiny_jpeg() -> bytes:
    """A 64x64 image: the tiny task the benchmarks use, a few milliseconds of work."""
    return faces.encode(np.random.default_rng(7).integers(0, 255, (64, 64, 3), dtype=np.uint8))


def test_a_failover_loses_no_accepted_task(tmp_path, face_server, object_server, tiny_jpeg):
    setup = SentinelSetup(tmp_path)
    gateway = GatewayProcess(
        "gateway",
        env={
            "REDIS_URL": setup.url,
            "GATEWAY_FACE_TARGETS": face_server.address,
            "GATEWAY_OBJECT_TARGETS": object_server.address,
            "GATEWAY_REDIS_WAIT_REPLICAS": "1",
            "GATEWAY_LEASE_S": "3",  # a task whose finish died with the primary runs again soon
            "GATEWAY_FACE_CONCURRENCY": "8",
        },
    )
    lock = threading.Lock()
    accepted: dict[str, tuple[float, float]] = {}  # task id -> (sent, answered 202)
    answers: list[tuple[float, int, str, str | None]] = []  # (when, status, code, Retry-After)
    readyz: list[tuple[float, float, int, bool | None]] = []  # (sent, answered, status, redis)
    done = threading.Event()
    killed_at: list[float] = []
    switched_at: list[float] = []

    def client() -> None:
        with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=30) as http:
            while not done.is_set():
                files = {"file": ("tiny.jpg", tiny_jpeg, "image/jpeg")}
                sent = time.monotonic()
                try:
                    r = http.post("/api/detect/face/image", files=files)
                except httpx.TransportError as exc:  # the gateway dropped a connection
                    answers.append((time.monotonic(), -1, repr(exc), None))
                    continue
                now = time.monotonic()
                code = r.json().get("error", {}).get("code", "") if r.status_code != 202 else ""
                answers.append((now, r.status_code, code, r.headers.get("retry-after")))
                if r.status_code == 202:
                    with lock:
                        accepted[r.json()["task_id"]] = (sent, now)
                        if len(accepted) >= TASKS:
                            done.set()
                elif r.status_code == 503:
                    time.sleep(0.2)  # Retry-After says 2 s; sooner, to time the pause finely

    def kill_primary() -> None:
        wait_until(lambda: len(accepted) >= KILL_AFTER or done.is_set(), 300, "tasks accepted")
        setup.primary.signal(signal.SIGKILL)
        killed_at.append(time.monotonic())
        old = setup.primary.port
        wait_until(lambda: setup.primary_port() not in (None, old), 60, "the sentinels' failover")
        switched_at.append(time.monotonic())

    def poll_readyz() -> None:
        with httpx.Client(base_url=gateway.url, timeout=30) as http:
            while not done.is_set():
                sent = time.monotonic()
                r = http.get("/readyz")
                body = r.json()
                readyz.append((sent, time.monotonic(), r.status_code, body["checks"]["redis"]))
                time.sleep(0.1)

    try:
        made = gateway_keys("create", "--name", "ops", "--json", redis_url=setup.url)
        assert made.returncode == 0, made.stderr  # python -m gateway keys, through the sentinels
        key_id = json.loads(made.stdout)["info"]["id"]
        gateway.start()
        started = time.monotonic()
        threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
        threads += [threading.Thread(target=f, daemon=True) for f in (kill_primary, poll_readyz)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert done.is_set() and killed_at and switched_at, (len(accepted), killed_at)
        submitted_s = time.monotonic() - started
        kill, switch = killed_at[0], switched_at[0]

        # Refused while the primary was missing: 503 with Retry-After, never a 500.
        codes = {(status, code) for _, status, code, _ in answers if status != 202}
        assert codes <= {(503, "store_unavailable"), (503, "store_unreplicated")}, codes
        assert all(retry for _, status, _, retry in answers if status == 503)
        refused = sum(1 for a in answers if a[1] == 503)
        assert refused, "no submit met the failover"
        before = max(answered for _, answered in accepted.values() if answered < kill)
        after = min(answered for sent, answered in accepted.values() if sent > kill)
        assert after - switch < 30, f"the gateway served again {after - switch:.1f} s after"

        # /readyz told the truth: ready before, not ready while Redis was away, ready after.
        assert all(s == 200 for sent, _, s, _ in readyz if sent < kill - 0.5), readyz[:5]
        outage = [r for r in readyz if kill < r[0] and r[2] == 503]
        assert outage and all(redis_ok is False for *_, redis_ok in outage)
        assert readyz[-1][2] == 200 and readyz[-1][3] is True
        for first, second in zip(readyz, readyz[1:], strict=False):
            if first[2] == second[2] == 503:  # Redis away all along: nothing was accepted
                inside = [t for t in accepted.values() if first[1] < t[0] and t[1] < second[0]]
                assert not inside, (first, second, inside)
        ready_again = min(r[1] for r in readyz if r[0] > kill and r[2] == 200)

        # Every task answered 202 succeeds, once.
        with gateway.client(timeout=30) as http:
            pending = set(accepted)
            statuses: dict[str, dict] = {}
            deadline = time.monotonic() + 180
            while pending and time.monotonic() < deadline:
                for task_id in list(pending):
                    body = http.get(f"/api/task/{task_id}").json()
                    if body.get("status") in ("succeeded", "failed", "cancelled"):
                        statuses[task_id] = body
                        pending.discard(task_id)
                time.sleep(0.2)
        assert not pending, f"{len(pending)} accepted tasks lost or stuck: {sorted(pending)[:5]}"
        outcome = {t: b["status"] for t, b in statuses.items() if b["status"] != "succeeded"}
        assert not outcome, outcome
        store = redis.Redis(port=setup.primary_port(), decode_responses=True)
        ended = {}
        with store.pipeline(transaction=False) as pipe:
            for task_id in accepted:
                pipe.xrange(JobStore.events_key(task_id))
            for task_id, events in zip(accepted, pipe.execute(), strict=True):
                ended[task_id] = [
                    json.loads(e["data"])["status"]
                    for _, e in events
                    if e["type"] == "status"
                    and json.loads(e["data"])["status"] in ("succeeded", "failed", "cancelled")
                ]
        store.close()
        assert all(ends == ["succeeded"] for ends in ended.values()), {
            t: e for t, e in ended.items() if e != ["succeeded"]
        }
        rerun = sum(1 for b in statuses.values() if b["attempts"] > 1)
        listed = gateway_keys("list", "--json", redis_url=setup.url)  # the keys moved too
        assert key_id in {k["id"] for k in json.loads(listed.stdout)}, listed.stderr
        print(
            f"\n{TASKS} tasks from {CLIENTS} clients in {submitted_s:.1f} s; primary SIGKILLed "
            f"after {KILL_AFTER}: sentinels switched {switch - kill:.2f} s later; last 202 "
            f"before the kill to first after: {after - before:.2f} s ({after - switch:.2f} s "
            f"after the switch); /readyz 200 again {ready_again - kill:.2f} s after the kill; "
            f"{refused} submits answered 503 meanwhile; {rerun} tasks ran a second attempt "
            "(their first one's end died with the primary); all succeeded once"
        )
    finally:
        done.set()
        gateway.stop()
        setup.stop()
