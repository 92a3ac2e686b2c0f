"""The job table's Lua scripts, each called directly with its KEYS and ARGV
against a real Redis, a single server and a Redis Cluster of three primaries
(started here on loopback ports): the records, queues, indexes, statistics,
quotas, previews and event log they leave. Then the whole table through
JobStore on the cluster: submit, claim, finish, list, search and figures
(tests/integration/test_cluster.py runs a whole gateway on one)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

import pytest

from gateway import events
from gateway.jobs import GROUP, JobStore, KeySchema, Status
from gateway.jobs.scripts import source
from gateway.redis_client import redis_client
from tests.redis_cluster import cluster_fixture  # noqa: F401 - the fixture `cluster`
from tests.redis_ha import RedisNode

KIND = "detect:image"
RETENTION = [100, 3600, 1000]  # the event log's: entries per tenant, seconds, outbox entries


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    node = RedisNode(tmp_path_factory.mktemp("single")).start()
    yield f"redis://127.0.0.1:{node.port}/0"
    node.stop()


@pytest.fixture(params=["single", "cluster"])
def url(request):
    """REDIS_URL of a fresh, empty Redis: a single server or a cluster."""
    if request.param == "single":
        url = request.getfixturevalue("single")
    else:
        url = request.getfixturevalue("cluster").url

    async def empty() -> None:
        client = redis_client(url)
        await client.flushall()  # (a cluster client sends it to every primary)
        await client.aclose()

    asyncio.run(empty())
    return url


@dataclass
class Table:
    """The clients of one Redis and its key schema; runs one script."""

    redis: object
    raw: object
    keys: KeySchema

    @classmethod
    def on(cls, url: str) -> Table:
        redis = redis_client(url)
        return cls(redis, redis_client(url, decode_responses=False), KeySchema.for_client(redis))

    async def run(self, name: str, keys: list[str], args: list, raw: bool = False):
        script = (self.raw if raw else self.redis).register_script(source(name))
        return await script(keys=keys, args=args)

    async def close(self) -> None:
        await self.redis.aclose()
        await self.raw.aclose()

    async def submit(self, task_id: str, *, tenant="t1", idem="", request_hash="h",
                     key_id="", limit_tasks=0, inline=False, now=None):  # fmt: skip
        k, now = self.keys, now or time.time()
        status = "running" if inline else "queued"
        keys = [
            k.task(task_id), k.input(task_id), k.gone(task_id), k.events(task_id), k.queue(KIND),
            k.idem(tenant, idem) if idem else k.none, k.inline, k.usage_all,
            k.usage(key_id) if key_id else k.none, k.index, k.by_kind("detect"),
            k.by_tenant(tenant), k.by_status(status), k.live(status, KIND),
            k.stats(KIND, int(now // 60)), k.task(""), k.none,
        ]  # fmt: skip
        args = [600, 900, task_id, "detect", "image", json.dumps({"min_score": 0.5}), repr(now),
                repr(now + 600), b"" if inline else b"request-bytes", tenant, request_hash,
                "inline" if inline else "queued", repr(now + 30), limit_tasks, 0, 0, 0, key_id,
                "0"]  # fmt: skip
        return await self.run("submit", keys, args, raw=True)

    def moves(self) -> list[str]:
        k = self.keys
        return [k.by_status(""), k.live("queued", ""), k.live("running", "")]

    async def start(self, task_id: str, max_attempts: int = 3):
        k = self.keys
        keys = [k.task(task_id), k.events(task_id), k.input(task_id), *self.moves()]
        return await self.run("start", keys, [repr(time.time()), max_attempts], raw=True)

    async def finish(self, task_id: str, status: str, *, allowed="running", entry_id="",
                     keep_s=0, create: list | None = None, preview=b""):  # fmt: skip
        k, now = self.keys, time.time()
        keys = [
            k.task(task_id), k.events(task_id), k.input(task_id), k.frames(task_id),
            k.queue(KIND) if entry_id else k.none, k.inline, k.gone(task_id),
            k.preview(task_id), k.none, k.index,
            k.by_kind("detect") if create else k.none, k.by_tenant("t1") if create else k.none,
            *self.moves(), k.stats(""), k.usage(""), k.usage_all,
            k.previews, k.preview_sizes, k.preview_bytes, k.previews_of(""), k.preview(""),
            k.task(""), k.evlog(""), k.evlog_all, k.outbox,
        ]  # fmt: skip
        create = create or []
        args = [allowed, status, json.dumps({"status": status}), entry_id, GROUP, task_id, 600,
                900, repr(now), keep_s, f"10 {1 << 20} {1 << 20}", preview, len(create), *create,
                "finished_at", repr(now), "result", '{"boxes": []}', *RETENTION]  # fmt: skip
        return await self.run("finish", keys, args)


def run(url: str, check) -> None:
    async def main() -> None:
        table = Table.on(url)
        try:
            await check(table)
        finally:
            await table.close()

    asyncio.run(main())


def new_id() -> str:
    return uuid.uuid4().hex


def test_submit_records_queues_indexes_and_counts_a_task(url):
    async def check(t: Table) -> None:
        k, task_id = t.keys, new_id()
        await t.redis.xgroup_create(k.queue(KIND), GROUP, id="0", mkstream=True)
        assert await t.submit(task_id, idem="key-1", key_id="k1") == [1, task_id.encode()]
        record = await t.redis.hgetall(k.task(task_id))
        assert (record["status"], record["tenant"], record["kind"], record["attempts"]) == (
            "queued", "t1", "detect", "0",
        )  # fmt: skip
        assert record["q_key"] == "k1" and record["input_bytes"] == str(len(b"request-bytes"))
        assert await t.raw.get(k.input(task_id)) == b"request-bytes"
        [(_entry, fields)] = await t.redis.xrange(k.queue(KIND))
        assert fields == {"task_id": task_id}
        for index in (k.index, k.by_kind("detect"), k.by_tenant("t1"), k.by_status("queued"),
                      k.live("queued", KIND)):  # fmt: skip
            assert await t.redis.zscore(index, task_id) is not None, index
        minute = int(float(record["created_at"]) // 60)
        assert await t.redis.hget(k.stats(KIND, minute), "submitted") == "1"
        assert await t.redis.hgetall(k.usage("k1")) == {"tasks": "1", "bytes": "13", "videos": "0"}
        assert await t.redis.hget(k.usage_all, "bytes") == "13"
        # the same request under the same Idempotency-Key: that task; another request: refused
        assert await t.submit(new_id(), idem="key-1") == [0, task_id.encode()]
        assert await t.submit(new_id(), idem="key-1", request_hash="other") == [
            -1, task_id.encode(),
        ]  # fmt: skip
        # the API key's limit of one task in flight is reached
        assert await t.submit(new_id(), key_id="k1", limit_tasks=1) == [-2, b"tasks", 1]
        assert await t.redis.zcard(k.index) == 1

    run(url, check)


def test_start_and_requeue_move_a_task_between_queued_and_running(url):
    async def check(t: Table) -> None:
        k, task_id = t.keys, new_id()
        await t.submit(task_id)
        code, attempts, request, created, tenant = await t.start(task_id)
        assert (code, attempts, request, tenant) == (1, 1, b"request-bytes", b"t1")
        assert await t.redis.hget(k.task(task_id), "status") == "running"
        assert await t.redis.zscore(k.by_status("running"), task_id) == float(created)
        assert await t.redis.zscore(k.live("running", KIND), task_id) is not None
        assert await t.redis.zscore(k.live("queued", KIND), task_id) is None
        assert await t.run("requeue", [k.task(task_id), *t.moves()], []) == 1
        assert await t.redis.hget(k.task(task_id), "status") == "queued"
        assert await t.redis.zscore(k.live("queued", KIND), task_id) is not None
        assert await t.redis.zscore(k.by_status("running"), task_id) is None
        assert await t.start(task_id, max_attempts=1) == [-1, 1]  # its attempts are spent
        await t.redis.delete(k.input(task_id))
        assert await t.start(task_id) == [-2]  # its input is gone
        assert await t.start(new_id()) == [0]  # no such task

    run(url, check)


def test_a_frame_is_announced_once_and_progress_every_time(url):
    async def check(t: Table) -> None:
        k, task_id = t.keys, new_id()
        await t.submit(task_id)
        keys = [k.frames(task_id), k.task(task_id), k.events(task_id)]
        frame = json.dumps({"frame_index": 0})
        assert await t.run("frame", keys, [0, frame, 1, 0, 600]) == 1
        assert await t.run("frame", keys, [0, frame, 1, 4, 600]) == 0  # a retried attempt's
        events = [f for _, f in await t.redis.xrange(k.events(task_id))]
        assert [e["type"] for e in events] == ["status", "frame", "progress", "progress"]
        assert [e["data"] for e in events[2:]] == [
            '{"done": 1, "total": null}', '{"done": 1, "total": 4}',
        ]  # fmt: skip
        assert await t.redis.hmget(k.task(task_id), "progress_done", "progress_total") == ["1", "4"]

    run(url, check)


def test_finish_ends_a_task_releases_its_quota_keeps_its_preview_and_publishes(url):
    async def check(t: Table) -> None:
        k, task_id = t.keys, new_id()
        await t.redis.xgroup_create(k.queue(KIND), GROUP, id="0", mkstream=True)
        await t.submit(task_id, key_id="k1")
        [[_queue, [(entry_id, _)]]] = await t.redis.xreadgroup(GROUP, "d1", {k.queue(KIND): ">"})
        await t.start(task_id)
        assert await t.finish(task_id, "succeeded", entry_id=entry_id, keep_s=60) == "running"
        record = await t.redis.hgetall(k.task(task_id))
        assert (record["status"], record["result"]) == ("succeeded", '{"boxes": []}')
        assert "q_key" not in record and record["input_bytes"] == "0"
        assert await t.redis.hgetall(k.usage("k1")) == {"tasks": "0", "bytes": "0", "videos": "0"}
        assert await t.redis.hget(k.usage_all, "bytes") == "0"
        assert await t.redis.zscore(k.by_status("succeeded"), task_id) is not None
        assert await t.redis.zcard(k.live("running", KIND)) == 0
        assert await t.redis.xlen(k.queue(KIND)) == 0  # acknowledged and deleted
        stats = await t.redis.hgetall(k.stats(KIND, int(time.time() // 60)))
        assert (
            stats["succeeded"] == "1"
            and sum(int(v) for f, v in stats.items() if f[0] == "r" and f[1:].isdigit()) == 1
        )
        # the request became the console's preview, counted as Redis holds it
        assert not await t.redis.exists(k.input(task_id))
        assert await t.raw.get(k.preview(task_id)) == b"request-bytes"
        size = await t.raw.memory_usage(k.preview(task_id))
        assert await t.redis.hgetall(k.preview_bytes) == {"all": str(size), "t:t1": str(size)}
        assert await t.redis.zscore(k.previews_of("t1"), task_id) is not None
        # the end is in the tenant's log, all tenants' log and the outbox, once
        [(_, logged)] = await t.redis.xrange(k.evlog("t1"))
        assert logged["type"] == "task.succeeded"
        assert json.loads(logged["data"])["task_id"] == task_id
        assert await t.redis.xlen(k.evlog_all) == 1 and await t.redis.xlen(k.outbox) == 1
        # a late second end changes nothing
        assert await t.finish(task_id, "failed") is None
        assert await t.redis.xlen(k.outbox) == 1

    run(url, check)


def test_a_preview_past_the_budget_drops_the_oldest_and_marks_its_task(url):
    async def check(t: Table) -> None:
        k, ids = t.keys, [new_id() for _ in range(11)]  # the budget keeps 10
        for task_id in ids:
            await t.submit(task_id)
            await t.start(task_id)
            await t.finish(task_id, "succeeded", keep_s=60)
        assert await t.redis.zcard(k.previews) == 10
        assert not await t.raw.exists(k.preview(ids[0]))
        assert await t.redis.hget(k.task(ids[0]), "input_dropped") == "1"
        assert await t.redis.zscore(k.previews_of("t1"), ids[0]) is None

    run(url, check)


def test_finish_records_a_simple_mode_task_whole(url):
    async def check(t: Table) -> None:
        k, task_id, now = t.keys, new_id(), time.time()
        create = ["id", task_id, "kind", "detect", "media", "image", "options", "{}",
                  "created_at", repr(now), "expires_at", repr(now + 600), "tenant", "t1",
                  "mode", "inline", "attempts", 1, "private", "0", "started_at", repr(now)]  # fmt: skip
        assert await t.finish(task_id, "failed", create=create) == ""
        record = await t.redis.hgetall(k.task(task_id))
        assert (record["status"], record["mode"], record["tenant"]) == ("failed", "inline", "t1")
        for index in (k.index, k.by_kind("detect"), k.by_tenant("t1"), k.by_status("failed")):
            assert await t.redis.zscore(index, task_id) == pytest.approx(now), index
        assert await t.redis.exists(k.gone(task_id))
        stats = await t.redis.hgetall(k.stats(KIND, int(now // 60)))
        assert (stats["submitted"], stats["failed"]) == ("1", "1")

    run(url, check)


def test_index_live_puts_the_tasks_still_queued_into_their_kind_s_live_index(url):
    async def check(t: Table) -> None:
        k, queued, running = t.keys, new_id(), new_id()
        await t.submit(queued)
        await t.submit(running)
        await t.start(running)
        await t.redis.delete(k.live("queued", KIND), k.live("running", KIND))  # an older table
        keys = [k.live("queued", ""), k.task(queued), k.task(running)]
        assert await t.run("index_live", keys, ["queued", queued, running]) == 1
        assert await t.redis.zrange(k.live("queued", KIND), 0, -1) == [queued]

    run(url, check)


def test_the_job_table_runs_on_a_cluster_of_three_primaries(cluster):
    """Submit, claim, start, finish, cancel, list, search and the console's
    figures through JobStore, on a cluster: every key of the table in one slot."""

    async def main() -> None:
        store = JobStore.from_url(cluster.url, 600, 600, [KIND], keep_input_s=60)
        await store.redis.flushall()
        await store.ensure_groups()
        assert await store.groups_ready()
        first, created = await store.submit("detect", "image", {}, b"one", tenant="t1",
                                            idempotency_key="i1", request_hash="h")  # fmt: skip
        assert created and (await store.submit("detect", "image", {}, b"one", tenant="t1",
                                               idempotency_key="i1", request_hash="h")) == (
            first, False)  # fmt: skip
        second, _ = await store.submit("detect", "image", {}, b"two", tenant="t2")
        claimed = await store.read_new([KIND], "d1", count=10, block_ms=100)
        assert [c.task_id for c in claimed] == [first, second]
        started = await store.start(first, 3)
        assert (started.code, started.request, started.tenant) == (1, b"one", "t1")
        assert await store.finish(first, Status.SUCCEEDED, result={"boxes": []},
                                  claimed=claimed[0])  # fmt: skip
        task, changed = await store.cancel(second, "t2")
        assert changed and task.status == Status.CANCELLED
        await store.ack(claimed[1])
        assert [e.data["status"] for e in await store.events(first, "0", 100)] == [
            "queued", "running", "succeeded",
        ]  # fmt: skip
        done, cursor = await store.list("succeeded", None, 10, None)
        assert [t.id for t in done] == [first] and cursor is None
        assert [t.id for t in (await store.list(None, "detect", 10, None, "t2"))[0]] == [second]
        assert [t.id for t in await store.find(second[:6], 10)] == [second]
        assert (await store.counts())["cancelled"] == 1
        assert (await store.queue_stats())[KIND]["waiting"] == 0
        [*_, now] = (await store.stats(1))[KIND]
        assert (now["submitted"], now["succeeded"], now["cancelled"]) == (2, 1, 1)
        assert await store.preview(first) == b"one"
        # the ends are in the event log, read as /api/events reads it
        logged, _ = await events.page(store.redis, None, events.Filters(), limit=10)
        assert [e["type"] for _, e in logged] == ["task.cancelled", "task.succeeded"]
        await store.prune_indexes()
        # the table's keys carry one hash tag: one node holds them all
        names = [key async for key in store.redis.scan_iter(match="*")]
        assert names and all(name.startswith("{percept}:") for name in names)
        assert {cluster.node_of(name) for name in names} == {cluster.node_of("{percept}")}
        await store.close()

    asyncio.run(main())
