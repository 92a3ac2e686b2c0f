"""Percept's Redis stores on a Redis Cluster of three primaries
(tests/redis_cluster.py): first each store's several-key steps (transactions,
scripts) called directly, then a whole gateway with auth on: its admin key
made on the cluster, a task end to end, a webhook delivered to a receiver on
loopback, a key revoked, wrong sign-ins throttled; and a source worker
watching a file. Every key written is under
the `{percept}` tag, on one node: a cluster refuses a script or transaction
whose keys span slots."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from gateway import events, signin
from gateway.errors import ApiError
from gateway.keys import KeyStore
from gateway.redis_client import redis_client
from gateway.signin import SignInThrottle
from gateway.sources import CHANGED, NewSource, SourceChange, SourcePolicy, SourceStore
from gateway.webhooks import Subscription, WebhookStore
from harness.processes import worker_process
from harness.webhook_receiver import Receiver
from tests.redis_cluster import cluster_fixture  # noqa: F401 - the fixture `cluster`
from tests.sources_support import LINE, crossing_clip, events_of, wait_status
from tests.support import GatewayProcess, wait_until
from tests.webhooks_support import DELIVERY_ENV

FAILURES = 3  # GATEWAY_LOGIN_FAILURES for the gateway here


def assert_all_in_one_slot(cluster) -> list[str]:
    """Every key on the cluster is Percept's, tagged, on the node of `{percept}`."""
    names = cluster.keys()
    assert names and [n for n in names if not n.startswith("{percept}:")] == []
    assert {cluster.node_of(name) for name in names} == {cluster.node_of("{percept}")}
    return names


def test_every_store_runs_its_steps_on_the_cluster(cluster, tmp_path):
    cluster.flush()
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not decoded here")

    async def main() -> None:
        redis = redis_client(cluster.url)
        try:
            await api_keys(redis)
            await sign_ins(redis)
            await sources_(redis, SourcePolicy(file_dirs=str(tmp_path)), str(clip))
            await webhooks_(redis)
        finally:
            await redis.aclose()

    asyncio.run(main())
    names = assert_all_in_one_slot(cluster)
    for family in ("key:", "keys", "session:", "signin:", "source:", "sources", "wh:", "evlog:"):
        assert any(n.startswith("{percept}:" + family) for n in names), family


async def api_keys(redis) -> None:
    """A key's record and the index in one transaction; its sessions; revocation."""
    keys = KeyStore(redis)
    secret, record = await keys.create("ops", "acme", "client")
    assert (await keys.lookup(secret)).id == record.id
    assert [k.id for k in await keys.list()] == [record.id]
    token, _ = await keys.open_session(secret, 60)
    assert (await keys.session(token)).id == record.id
    assert (await keys.revoke(record.id)).revoked_at
    assert [k.revoked_at > 0 for k in await keys.list()] == [True]


async def sign_ins(redis) -> None:
    """An address's and a key id's counters, counted in one script."""
    throttle = SignInThrottle(redis, failures=2, window_s=60)
    guess = signin.counters("10.0.0.7", "pk_1a2b3c4d_guess")
    await throttle.attempt(guess)
    await throttle.attempt(guess)
    for refused in (guess, signin.counters("10.0.0.8", "pk_1a2b3c4d_other")):  # the key id's
        with pytest.raises(ApiError) as error:
            await throttle.attempt(refused)
        assert error.value.status == 429 and int(error.value.headers["Retry-After"]) > 0
    right = signin.counters("10.0.0.9", "pk_ffffffff_right")
    await throttle.attempt(right)
    await throttle.succeeded(right)  # a success leaves nothing counted
    assert await redis.get("{percept}:signin:addr:10.0.0.9") is None


async def sources_(redis, policy: SourcePolicy, clip: str) -> None:
    """Create, list, change and delete (transactions; MGET of the records), each
    announced to the workers."""
    store = SourceStore(redis, policy)
    pubsub = redis.pubsub()
    await pubsub.subscribe(CHANGED)
    record = await store.create("acme", NewSource(url=clip, paused=True))
    assert [s["id"] for s in await store.list("acme")] == [record["id"]]
    assert [s["id"] for s in await store.list(None)] == [record["id"]]
    assert (await store.status(record["id"]))["state"] == "paused"
    await store.change(record, SourceChange(paused=False))
    assert (await store.status(record["id"]))["state"] == "connecting"
    await store.create("acme", NewSource(url=clip, paused=True))  # (kept: its keys are checked)
    await store.delete(record)
    assert record["id"] not in {s["id"] for s in await store.list(None)}
    announced = []
    async with asyncio.timeout(10):
        async for message in pubsub.listen():
            if message["type"] == "message":
                announced.append(message["data"])
            if len(announced) == 4:
                break
    assert announced[:2] == [record["id"]] * 2 and announced[3] == record["id"]
    await pubsub.aclose()


async def webhooks_(redis) -> None:
    """A subscription (one transaction); a delivery made, refused twice, sent again."""
    store = WebhookStore(redis)
    sub = await store.create(
        Subscription(id="", tenant="acme", url="https://example.com/h", types=["zone.entered"])
    )
    assert (
        [s.id for s in await store.list("acme")]
        == [sub.id]
        == [s.id for s in await store.list(None)]
    )
    envelope = {"id": events.new_id(), "type": "zone.entered", "tenant": "acme", "data": {}}
    assert await store.enqueue(sub, envelope, 1.0) and not await store.enqueue(sub, envelope, 2.0)
    assert (await store.delivery(sub, envelope["id"]))["status"] == "pending"
    assert await store.redeliver(sub, envelope["id"])
    await events.publish(redis, "acme", "zone.entered", {"source_id": "cam1"})


def test_a_gateway_with_auth_on_the_cluster(cluster, face_server, object_server, zidane_bytes):
    """`python -m gateway` on REDIS_URL=redis+cluster://..., auth on: its admin
    key is made on the cluster; a task runs end to end and its end reaches a
    webhook receiver, signed; a revoked key is refused; wrong sign-ins are
    throttled."""
    cluster.flush()
    receiver = Receiver()
    gateway = GatewayProcess(
        "gateway",
        env={"REDIS_URL": cluster.url, "GATEWAY_FACE_TARGETS": face_server.address,
             "GATEWAY_OBJECT_TARGETS": object_server.address,
             "GATEWAY_LOGIN_FAILURES": str(FAILURES), **DELIVERY_ENV},
    ).start()  # fmt: skip
    try:
        with gateway.client(timeout=60) as admin:
            assert admin.get("/api/session").json()["role"] == "admin"
            r = admin.post("/api/webhooks", json={"url": receiver.url, "types": ["task.succeeded"]})
            assert r.status_code == 201, r.text
            sub = r.json()
            r = admin.post("/api/detect/object/image",
                           files={"file": ("z.jpg", zidane_bytes, "image/jpeg")})  # fmt: skip
            assert r.status_code == 202, r.text
            task_id = r.json()["task_id"]
            with admin.stream("GET", f"/api/task/{task_id}/events") as stream:
                statuses = [json.loads(line[6:])
                            for line in stream.iter_lines() if line.startswith("data: {\"status")]  # fmt: skip
            assert statuses[-1]["status"] == "succeeded"
            assert statuses[-1]["task"]["result"]["detections"]
            listed = admin.get("/api/tasks", params={"status": "succeeded"}).json()
            assert [t["task_id"] for t in listed["tasks"]] == [task_id]
            kinds = {k["id"]: k for k in admin.get("/api/stats").json()["kinds"]}
            assert kinds["object_detection:image"]["last_5m"]["succeeded"] == 1

            # the task's end, delivered once, signed with the subscription's secret
            assert receiver.wait_for(lambda got: got.ok_ids(), 60), receiver.received
            [delivered] = [Webhook(sub["secret"]).verify(x.body, x.headers)
                           for x in receiver.received]  # fmt: skip
            assert (delivered["type"], delivered["data"]["task_id"]) == ("task.succeeded", task_id)
            attempts = wait_until(
                lambda: admin.get(f"/api/webhooks/{sub['id']}/deliveries").json()["attempts"],
                what="the delivery logged",
            )
            assert [a["status_code"] for a in attempts] == [200]

            # a key made through the API, then revoked: refused at once
            made = admin.post("/api/keys", json={"name": "acme", "tenant": "acme"}).json()
            acme = {"Authorization": f"Bearer {made['key']}"}
            assert admin.get("/api/tasks", headers=acme).status_code == 200
            assert admin.delete(f"/api/keys/{made['info']['id']}").status_code == 200
            wait_until(lambda: admin.get("/api/tasks", headers=acme).status_code == 401,
                       5, "the revoked key refused")  # fmt: skip

        # wrong sign-ins are counted on the cluster: then even the right key waits
        with httpx.Client(base_url=gateway.url, timeout=60) as console:
            wrong = [console.post("/api/session", json={"api_key": f"guess-{i}"})
                     for i in range(FAILURES + 1)]  # fmt: skip
            assert [w.status_code for w in wrong] == [401] * FAILURES + [429]
            right = console.post("/api/session", json={"api_key": gateway.api_key})
            assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0
        assert_all_in_one_slot(cluster)
    finally:
        gateway.stop()
        receiver.close()


def test_a_source_worker_on_the_cluster(cluster, face_server, object_server, tmp_path):
    """`python -m source_worker` on REDIS_URL=redis+cluster://...: it leases the
    file source the gateway registered there, counts the clip's line crossings
    into the event log, and keeps the source's status, counts and newest frame
    (the console's live view) under the tag."""
    cluster.flush()
    path = tmp_path / "crossings.avi"
    truth = crossing_clip(path)
    env = {"REDIS_URL": cluster.url, "GATEWAY_FACE_TARGETS": face_server.address,
           "GATEWAY_OBJECT_TARGETS": object_server.address, "SOURCES_FILE_DIRS": str(tmp_path)}  # fmt: skip
    gateway = GatewayProcess(
        "gateway", env={**env, "GATEWAY_DISPATCHERS": "false", "GATEWAY_REPLICA_MONITOR": "false"}
    ).start()
    worker = worker_process(env, "w1").start()
    try:
        with gateway.client(timeout=60) as admin:
            r = admin.post("/api/sources",
                           json={"url": str(path), "max_fps": truth.fps, "lines": [LINE]})  # fmt: skip
            assert r.status_code == 201, r.text
            source_id = r.json()["id"]
            live = wait_until(
                lambda: (f := admin.get(f"/api/sources/{source_id}/live")).status_code == 200 and f,
                60, "the source's newest frame",
            )  # fmt: skip
            assert live.json()["jpeg"] and live.json()["width"] == 640
            ended = wait_status(
                admin, source_id, lambda s: s["status"]["state"] == "ended", 120, "ended"
            )
            assert ended["status"]["frames_processed"] > 0
            events = wait_until(  # the last event a source writes is its end
                lambda: (e := events_of(admin, source_id)) and e[-1].get("state") == "ended" and e,
                30, "the source's end in the event log",
            )  # fmt: skip
            crossings = [e["direction"] for e in events if e["type"] == "line.crossed"]
            assert crossings == ["in", "out", "in"]
        names = assert_all_in_one_slot(cluster)
        for key in (f"source:{source_id}:status", f"source:{source_id}:counts", "source-workers"):
            assert "{percept}:" + key in names, key
    finally:
        worker.stop()
        gateway.stop()
