"""The queue figures tell the truth after a Redis restart and a recreated
consumer group: the console's overview (/api/stats) and /metrics' queue gauges
agree with the task records (/api/tasks?status=queued / running) and with the
queues' streams, zero included, and the oldest-waiting age is the oldest queued
task's. A finished image task's progress is 1 of 1.

(They used to come from the consumer group's `lag` and pending count, which a
recreated group gets wrong: the overview showed 100 queued over empty queues.)
The dispatcher that holds tasks while the group is recreated is the job table's
own dispatcher calls (read_new, start, finish), made by the test so that it
holds them exactly across the recreation; the gateway and the worker that
drains the queues are real processes, with real backends."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime

import httpx
import pytest
import redis

from gateway.jobs import GROUP, Claimed, JobStore, Status
from gateway.kinds import KINDS
from tests.support import GatewayProcess, RedisServer, submit, wait_done

pytestmark = pytest.mark.slow

FACE, OBJECT = "face_detection:image", "object_detection:image"
SLACK_S = 2.5  # the overview is cached a second; the figures are read one after another


def metric(text: str, name: str, kind_id: str) -> float:
    kind, media = kind_id.split(":")
    found = re.search(rf'^{name}\{{kind="{kind}",media="{media}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def parse(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Figures:
    """Every place that says how many tasks wait, read at once, per kind."""

    def __init__(self, http: httpx.Client, store: redis.Redis) -> None:
        self.http, self.store = http, store

    def read(self) -> dict[str, dict]:
        stats = self.http.get("/api/stats").json()
        metrics = self.http.get("/metrics").text
        now = time.time()
        out = {}
        for k in stats["kinds"]:
            kind, media = k["kind"], k["media"]
            listed = {}
            for status in ("queued", "running"):
                page = self.http.get(
                    "/api/tasks", params={"status": status, "kind": kind, "media": media,
                                          "limit": 100},
                ).json()  # fmt: skip
                listed[status] = page["tasks"]
            entries = self.store.xrange(f"percept:queue:{k['id']}")
            waiting_in_stream = [
                fields[b"task_id"].decode()
                for _, fields in entries
                if self.store.hget(f"percept:task:{fields[b'task_id'].decode()}", "status")
                == b"queued"
            ]
            oldest = min((parse(t["created_at"]) for t in listed["queued"]), default=None)
            out[k["id"]] = {
                "overview": (k["queued"], k["running"]),
                "metrics": (
                    int(metric(metrics, "percept_gateway_queue_waiting", k["id"])),
                    int(metric(metrics, "percept_gateway_queue_running", k["id"])),
                ),
                "records": (len(listed["queued"]), len(listed["running"])),
                "queued_ids": {t["task_id"] for t in listed["queued"]},
                "stream_ids": set(waiting_in_stream),
                "stream_length": len(entries),
                "overview_oldest": k["oldest_waiting_s"],
                "metrics_oldest": metric(
                    metrics, "percept_gateway_queue_oldest_waiting_seconds", k["id"]
                ),
                "true_oldest_at_overview": stats["time"] - oldest if oldest else 0.0,
                "true_oldest_now": now - oldest if oldest else 0.0,
            }
        return out

    def agree(self, expected: dict[str, tuple[int, int]], timeout: float = 30) -> dict:
        """Wait until the overview, /metrics and the records all say `expected`
        (kind id -> (queued, running); kinds not named: (0, 0)), then check the
        streams and the oldest-waiting ages."""
        deadline = time.monotonic() + timeout
        while True:
            figures = self.read()
            want = {kind_id: expected.get(kind_id, (0, 0)) for kind_id in figures}
            said = {
                kind_id: {f: figures[kind_id][f] for f in ("overview", "metrics", "records")}
                for kind_id in figures
            }
            if all(len(set(s.values())) == 1 and s["records"] == want[k] for k, s in said.items()):
                break
            assert time.monotonic() < deadline, f"wanted {want}, read {said}"
            time.sleep(0.3)
        for kind_id, f in figures.items():
            # every queued task waits in its kind's stream, and nothing else does
            assert f["stream_ids"] == f["queued_ids"], kind_id
            if not f["queued_ids"]:
                assert f["overview_oldest"] == 0 and f["metrics_oldest"] == 0, (kind_id, f)
                continue
            assert f["overview_oldest"] == pytest.approx(f["true_oldest_at_overview"], abs=SLACK_S)
            assert 0 <= f["true_oldest_now"] - f["metrics_oldest"] <= SLACK_S, (kind_id, f)
        return figures


def run(coroutine):
    return asyncio.run(coroutine)


def test_queue_figures_agree_with_the_records_after_a_redis_restart_and_recreated_groups(
    tmp_path, face_server, object_server, zidane_bytes, bus_bytes
):
    store = RedisServer(tmp_path, aof=True).start()
    env = {"REDIS_URL": store.url, "GATEWAY_FACE_TARGETS": face_server.address,
           "GATEWAY_OBJECT_TARGETS": object_server.address,
           "GATEWAY_REPLICA_MONITOR": "false"}  # fmt: skip
    api = GatewayProcess("gateway", env={**env, "GATEWAY_DISPATCHERS": "false"}).start()
    worker = GatewayProcess("gateway.worker", env=env)
    client = redis.Redis.from_url(store.url)

    def job_table() -> JobStore:
        return JobStore.from_url(store.url, 86_400, 604_800, [k.id for k in KINDS])

    async def take(count: int) -> list[Claimed]:
        """A dispatcher takes `count` face tasks and starts them."""
        jobs = job_table()
        try:
            claimed = await jobs.read_new([FACE], "dispatcher-before", count, 1000)
            for c in claimed:
                assert (await jobs.start(c.task_id, 3)).code == 1
            return claimed
        finally:
            await jobs.close()

    async def finish(claimed: Claimed) -> None:
        """...and ends one (acknowledged and deleted from its stream)."""
        jobs = job_table()
        try:
            faces = {"faces": [], "image_width": 1, "image_height": 1}
            assert await jobs.finish(
                claimed.task_id, Status.SUCCEEDED, result=faces, claimed=claimed
            )
        finally:
            await jobs.close()

    async def recreate_groups() -> None:
        """What a dispatcher does on NOGROUP (the groups were lost)."""
        for kind in KINDS:
            client.xgroup_destroy(f"percept:queue:{kind.id}", GROUP)
        jobs = job_table()
        try:
            await jobs.ensure_groups()
        finally:
            await jobs.close()

    try:
        with api.client(timeout=60) as http:
            figures = Figures(http, client)
            figures.agree({})  # nothing yet: zero everywhere

            faces = [submit(http, "/api/detect/face/image", zidane_bytes).json()["task_id"]
                     for _ in range(3)]  # fmt: skip
            objects = [submit(http, "/api/detect/object/image", bus_bytes).json()["task_id"]
                       for _ in range(2)]  # fmt: skip
            figures.agree({FACE: (3, 0), OBJECT: (2, 0)})

            held = run(take(2))  # two face tasks run on a dispatcher...
            figures.agree({FACE: (1, 2), OBJECT: (2, 0)})
            store.stop()
            store.start()  # ...when Redis restarts (the same data, from its file)
            run(recreate_groups())  # and the consumer groups are made anew
            run(finish(held[1]))  # the dispatcher ends one of its tasks
            seen = figures.agree({FACE: (1, 1), OBJECT: (2, 0)})
            assert seen[FACE]["stream_length"] == 2  # the running one's entry, and the queued one's

            faces += [submit(http, "/api/detect/face/image", zidane_bytes).json()["task_id"]
                      for _ in range(2)]  # fmt: skip
            figures.agree({FACE: (3, 1), OBJECT: (2, 0)})
            run(finish(held[0]))
            figures.agree({FACE: (3, 0), OBJECT: (2, 0)})

            # tasks recorded by a gateway before the live indexes: indexed at the next start
            client.delete(*client.keys("percept:tasks:live:*"), JobStore.LIVE_INDEXED)
            api.stop()
            api.start()
            figures.agree({FACE: (3, 0), OBJECT: (2, 0)})
            queued = http.get(f"/api/task/{faces[-1]}").json()
            assert queued["status"] == "queued" and queued["progress"] == {"done": 0, "total": 1}

            worker.start()  # dispatchers drain the queues
            ended = [wait_done(http, task_id) for task_id in faces + objects]
            assert {t["status"] for t in ended} == {"succeeded"}
            assert all(t["progress"] == {"done": 1, "total": 1} for t in ended)  # one image each
            seen = figures.agree({})  # zero everywhere again, the streams empty
            assert all(f["stream_length"] == 0 for f in seen.values()), seen
    finally:
        if getattr(worker, "proc", None) is not None:
            worker.stop()
        api.stop()
        store.stop()
