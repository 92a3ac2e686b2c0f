"""A Redis restart loses nothing it was told to keep: without persistence the
gateway recovers by itself and every task accepted after the restart
succeeds; with an append-only file every task accepted before it does too.
While Redis is down, submits answer 503 with Retry-After."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.support import GatewayProcess, RedisServer, create_key, submit, wait_done, wait_until

pytestmark = pytest.mark.slow


def test_without_persistence_the_gateway_recovers_by_itself(
    tmp_path, face_server, object_server, zidane_bytes
):
    store = RedisServer(tmp_path, aof=False).start()
    env = {"REDIS_URL": store.url, "GATEWAY_FACE_TARGETS": face_server.address,
           "GATEWAY_OBJECT_TARGETS": object_server.address}  # fmt: skip
    gateway = GatewayProcess("gateway", env=env).start()
    outcomes: list[tuple[float, float, int, str | None]] = []  # sent, answered, status, task
    stop = threading.Event()
    key = [gateway.api_key]

    def load() -> None:  # one client submitting all along
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            while not stop.is_set():
                client.headers["Authorization"] = f"Bearer {key[0]}"
                sent = time.monotonic()
                try:
                    r = submit(client, "/api/detect/face/image", zidane_bytes)
                except httpx.TransportError as exc:  # a reset would land here
                    outcomes.append((sent, time.monotonic(), -1, repr(exc)))
                    continue
                task = r.json().get("task_id") if r.status_code == 202 else None
                outcomes.append(
                    (sent, time.monotonic(), r.status_code, task or r.headers.get("retry-after"))
                )
                time.sleep(0.05)

    thread = threading.Thread(target=load, daemon=True)
    try:
        thread.start()
        wait_until(
            lambda: sum(code == 202 for _, _, code, _ in outcomes) >= 3, 60, "submits accepted"
        )
        store.stop()
        down_at = time.monotonic()
        wait_until(
            lambda: sum(sent > down_at for sent, _, _, _ in outcomes) >= 3, 60, "submits while down"
        )
        with gateway.client(timeout=10) as http:
            assert http.get("/readyz").status_code == 503  # not ready while Redis is down
        up_at = time.monotonic()
        store.start()  # empty: no persistence
        back_at = time.monotonic()
        key[0] = create_key(store.url)  # the keys went with the data
        recovered = None
        with httpx.Client(base_url=gateway.url, timeout=60) as http:
            http.headers["Authorization"] = f"Bearer {key[0]}"
            while time.monotonic() - back_at < 30:
                if http.get("/readyz").status_code == 200:
                    recovered = time.monotonic() - back_at
                    break
                time.sleep(0.1)
            assert recovered is not None, http.get("/readyz").json()
            wait_until(
                lambda: sum(code == 202 and sent > back_at + 0.5 for sent, _, code, _ in outcomes) >= 5,
                60, "submits accepted again",
            )  # fmt: skip
            stop.set()
            thread.join(30)
            # sent and answered while Redis was down
            during = [o for o in outcomes if down_at < o[0] and o[1] < up_at]
            assert during and all(code == 503 for _, _, code, _ in during), [
                o for o in during if o[2] != 503
            ]
            assert all(retry is not None for _, _, _, retry in during)  # Retry-After
            assert all(code in (202, 503, 401) for _, _, code, _ in outcomes), outcomes
            after = [
                task for sent, _, code, task in outcomes if code == 202 and sent > back_at + 0.5
            ]
            assert len(after) >= 5
            assert [wait_done(http, task)["status"] for task in after] == ["succeeded"] * len(after)
        print(f"ready again {recovered:.2f} s after Redis came back; {len(during)} submits refused "
              f"with 503 while it was down; {len(after)} accepted after, all succeeded")  # fmt: skip
    finally:
        stop.set()
        gateway.stop()
        store.stop()


def test_with_an_append_only_file_queued_tasks_survive_the_restart(
    tmp_path, face_server, object_server, zidane_bytes
):
    store = RedisServer(tmp_path, aof=True).start()
    env = {"REDIS_URL": store.url, "GATEWAY_FACE_TARGETS": face_server.address,
           "GATEWAY_OBJECT_TARGETS": object_server.address}  # fmt: skip
    api = GatewayProcess("gateway", env={**env, "GATEWAY_DISPATCHERS": "false"}).start()
    try:
        with api.client(timeout=60) as http:
            ids = [submit(http, "/api/detect/face/image", zidane_bytes).json()["task_id"]
                   for _ in range(5)]  # fmt: skip
            assert {http.get(f"/api/task/{i}").json()["status"] for i in ids} == {"queued"}
            store.stop()
            store.start()  # the same data, from the append-only file
            worker = GatewayProcess("gateway.worker", env=env).start()
            try:
                done = [wait_done(http, task_id) for task_id in ids]
            finally:
                worker.stop()
        assert [t["status"] for t in done] == ["succeeded"] * 5
        assert all(len(t["result"]["faces"]) == 1 for t in done)
    finally:
        api.stop()
        store.stop()
