"""The event log: task ends published atomically, tenant-scoped reads, the live SSE stream."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import numpy as np
import pytest
import redis.asyncio as aioredis

from gateway import events
from tests.conftest import encode
from tests.support import GatewayProcess, create_key, free_port, fresh_db


def publish(url: str, tenant: str, type_: str, data: dict) -> str:
    async def go() -> str:
        client = aioredis.from_url(url, decode_responses=True)
        try:
            return await events.publish(client, tenant, type_, data)
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def api(redis_url):
    """A gateway with no dispatchers (a queued task stays queued until cancelled)
    and no reachable backends: the event routes need neither."""
    url = fresh_db(redis_url, 13)
    dead = f"127.0.0.1:{free_port()}"
    server = GatewayProcess(
        "gateway",
        env={"REDIS_URL": url, "GATEWAY_DISPATCHERS": "false", "GATEWAY_REPLICA_MONITOR": "false",
             "GATEWAY_FACE_TARGETS": dead, "GATEWAY_OBJECT_TARGETS": dead},
    ).start()  # fmt: skip
    server.redis_url = url
    server.keys = {t: create_key(url, role="client", tenant=t) for t in ("acme", "globex")}
    yield server
    server.stop()


def as_tenant(api, tenant: str) -> httpx.Client:
    return httpx.Client(
        base_url=api.url, headers={"Authorization": f"Bearer {api.keys[tenant]}"}, timeout=60
    )


def test_a_cancelled_task_is_published_once_to_its_tenant_only(api):
    png = encode(np.full((32, 32, 3), 127, np.uint8), ".png")
    with as_tenant(api, "acme") as acme, as_tenant(api, "globex") as globex:
        r = acme.post("/api/detect/face/image", files={"file": ("a.png", png, "image/png")})
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        assert acme.delete(f"/api/task/{task_id}").status_code == 200
        assert acme.delete(f"/api/task/{task_id}").status_code == 409  # no second end

        page = acme.get("/api/events", params={"task_id": task_id}).json()
        assert [e["type"] for e in page["events"]] == ["task.cancelled"]
        event = page["events"][0]
        assert event["id"].startswith("evt_") and event["tenant"] == "acme"
        assert event["data"]["task_id"] == task_id
        assert event["data"]["status"] == "cancelled"
        assert event["data"]["kind"] == "face_detection" and event["data"]["media"] == "image"
        assert globex.get("/api/events").json()["events"] == []
        admin = api.client(timeout=60).get("/api/events", params={"task_id": task_id}).json()
        assert [e["id"] for e in admin["events"]] == [event["id"]]  # admins see every tenant


def test_filters_paging_and_bad_queries(api):
    for i in range(7):
        publish(api.redis_url, "globex", "zone.entered", {"source_id": f"cam{i % 2}", "n": i})
    publish(api.redis_url, "globex", "source.state_changed", {"source_id": "cam0", "state": "up"})
    with as_tenant(api, "globex") as globex:
        seen, cursor = [], None
        while True:
            params = {"type": "zone.entered", "source_id": "cam0", "limit": 2}
            page = globex.get(
                "/api/events", params={**params, **({"cursor": cursor} if cursor else {})}
            )
            assert page.status_code == 200, page.text
            body = page.json()
            seen += [e["data"]["n"] for e in body["events"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == [6, 4, 2, 0]  # newest first, across pages
        bad = globex.get("/api/events", params={"type": "zone.exploded"})
        assert bad.status_code == 422 and "zone.entered" in bad.json()["error"]["message"]
        bad = globex.get("/api/events", params={"cursor": "yesterday"})
        assert bad.status_code == 400 and "seq" in bad.json()["error"]["message"]
    with pytest.raises(ValueError, match="unknown event type"):
        publish(api.redis_url, "globex", "zone.exploded", {"source_id": "x"})


def read_sse(client: httpx.Client, headers: dict, want: int, params=None) -> list[dict]:
    """The first `want` events of the stream (id, type, data)."""
    out: list[dict] = []
    with client.stream("GET", "/api/events/stream", headers=headers, params=params) as r:
        assert r.status_code == 200
        current: dict = {}
        for line in r.iter_lines():
            if line.startswith("id: "):
                current["id"] = line[4:]
            elif line.startswith("event: "):
                current["type"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and "data" in current:
                out.append(current)
                current = {}
                if len(out) == want:
                    return out
    return out


def test_the_live_stream_delivers_new_events_and_resumes(api):
    with as_tenant(api, "acme") as acme:
        got: list[dict] = []
        connected = threading.Event()

        def listen():
            with acme.stream("GET", "/api/events/stream", params={"type": "line.crossed"}) as r:
                connected.set()
                current: dict = {}
                for line in r.iter_lines():
                    if line.startswith("id: "):
                        current["id"] = line[4:]
                    elif line.startswith("data: "):
                        current["data"] = json.loads(line[6:])
                    elif line == "" and "data" in current:
                        got.append(current)
                        current = {}
                        if len(got) == 2:
                            return

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        assert connected.wait(30)
        # the stream starts where the log ended when the response began
        first = publish(api.redis_url, "acme", "line.crossed", {"source_id": "door", "n": 1})
        publish(api.redis_url, "acme", "zone.left", {"source_id": "door"})  # filtered out
        publish(api.redis_url, "globex", "line.crossed", {"source_id": "door"})  # not acme's
        second = publish(api.redis_url, "acme", "line.crossed", {"source_id": "door", "n": 2})
        thread.join(60)
        assert [e["data"]["id"] for e in got] == [first, second]
        # Last-Event-ID resumes after an event: the next one arrives, nothing before it
        resumed = read_sse(acme, {"Last-Event-ID": got[0]["id"]}, 1, {"type": "line.crossed"})
        assert resumed[0]["data"]["id"] == second
        bad = acme.get("/api/events/stream", headers={"Last-Event-ID": "nope"})
        assert bad.status_code == 400


@pytest.mark.slow
def test_succeeded_tasks_are_published_from_both_ways_a_task_runs(gateway, zidane_bytes):
    """Queued (a dispatcher ends it) and simple mode (?wait=true: the API process
    records it whole when it ends): one task.succeeded each, with its summary."""
    with gateway.client(timeout=120) as http:
        files = {"file": ("z.jpg", zidane_bytes, "image/jpeg")}
        inline = http.post("/api/detect/face/image", files=files, params={"wait": "true"})
        assert inline.status_code == 200, inline.text
        queued = http.post("/api/detect/face/image", files=files)
        assert queued.status_code == 202
        for task_id in (inline.json()["task_id"], queued.json()["task_id"]):
            deadline = time.monotonic() + 120
            while True:
                page = http.get("/api/events", params={"task_id": task_id}).json()["events"]
                if page or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert [e["type"] for e in page] == ["task.succeeded"], page
            data = page[0]["data"]
            assert data["task_id"] == task_id and data["status"] == "succeeded"
            assert data["kind"] == "face_detection" and data["attempts"] >= 1
            assert data["finished_at"] >= data["started_at"] >= data["created_at"] > 0
            assert "result" not in data  # the summary, not the result
