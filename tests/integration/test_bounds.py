"""Bounded memory and disk: big uploads are queued within the caps or refused
(503 + Retry-After past the queue's byte cap, 413 past the upload limit,
chunked or not, without reading the rest), and Redis, the gateway's memory and
the disk come back to their baseline once the tasks end; the uploads kept for
the console after their tasks stay within their byte budgets."""

from __future__ import annotations

import select
import shutil
import socket
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import cv2
import httpx
import numpy as np
import psutil
import pytest
import redis

from gateway.settings import GatewaySettings, redis_maxmemory
from tests.conftest import encode
from tests.support import (
    GatewayProcess,
    RedisServer,
    create_key,
    fresh_db,
    submit,
    wait_done,
    wait_until,
)

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
VIDEO_LIMIT = 60 * MiB
QUEUE_CAP = 200 * MiB


@pytest.fixture(scope="module")
def big_video(tmp_path_factory) -> bytes:
    """A real ~59 MiB MJPG video (noise frames compress badly)."""
    path = tmp_path_factory.mktemp("big") / "big.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (1280, 720))
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    rng = np.random.default_rng(0)
    while True:
        writer.write(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8))
        if path.exists() and path.stat().st_size > 58 * MiB:
            break
    writer.release()
    data = path.read_bytes()
    assert 58 * MiB < len(data) < VIDEO_LIMIT
    return data


def rss(gateway: GatewayProcess) -> int:
    return psutil.Process(gateway.proc.pid).memory_info().rss


def test_ten_big_videos_are_queued_within_the_cap_then_refused(
    big_video, redis_url, face_server, object_server
):
    url = fresh_db(redis_url, 12)
    store = redis.Redis.from_url(url)
    gateway = GatewayProcess(
        "gateway",
        env={"REDIS_URL": url, "GATEWAY_FACE_TARGETS": face_server.address,
             "GATEWAY_OBJECT_TARGETS": object_server.address,
             "GATEWAY_DISPATCHERS": "false",  # nothing runs them: they stay queued
             "GATEWAY_MAX_VIDEO_BYTES": str(VIDEO_LIMIT),
             "GATEWAY_MAX_QUEUED_BYTES": str(QUEUE_CAP)},
    ).start()  # fmt: skip
    tmp_before = shutil.disk_usage(tempfile.gettempdir()).used
    try:
        with gateway.client(timeout=120) as http:
            for _ in range(3):  # warm the allocator on the same path
                small = submit(
                    http, "/api/detect/face/video", big_video[: 2 * MiB], "v.avi", "video/x-msvideo"
                )
                assert small.status_code in (202, 422)  # fmt: skip
            baseline = rss(gateway)
            redis_before = store.info("memory")["used_memory"]
            codes, peaks, accepted = [], [], []
            for _ in range(10):
                r = submit(http, "/api/detect/face/video", big_video, "v.avi", "video/x-msvideo")
                codes.append(r.status_code)
                peaks.append(rss(gateway))
                if r.status_code == 202:
                    accepted.append(r.json()["task_id"])
                else:
                    assert r.status_code == 503 and r.json()["error"]["code"] == "queue_full"
                    assert r.headers["retry-after"]
            assert codes == [202] * 3 + [503] * 7, codes  # 3 x 59 MiB fit under 200 MiB

            def held() -> int | None:  # Redis shrinks idle clients' query buffers within ~1 s
                used = store.info("memory")["used_memory"] - redis_before
                return used if used < QUEUE_CAP + 16 * MiB else None

            queued = wait_until(held, 30, "Redis holding the queued uploads, and no more")
            for task_id in accepted:  # ending the tasks deletes their uploads
                assert http.delete(f"/api/task/{task_id}").status_code == 200
            after_cancel = store.info("memory")["used_memory"] - redis_before
            assert after_cancel < 8 * MiB, after_cancel
            assert submit(http, "/api/detect/face/video", big_video, "v.avi",
                          "video/x-msvideo").status_code == 202  # room again  # fmt: skip

            def settled_rss() -> int | None:
                now = rss(gateway)
                return now if now < baseline + 120 * MiB else None

            settled = wait_until(settled_rss, 30, "the gateway's RSS back near its baseline")
        print(
            f"gateway RSS {baseline / MiB:.0f} MiB at rest, peak {max(peaks) / MiB:.0f} MiB, "
            f"{settled / MiB:.0f} MiB after; Redis held {queued / MiB:.0f} MiB of uploads "
            f"(cap {QUEUE_CAP / MiB:.0f}), {after_cancel / MiB:.1f} MiB once they ended"
        )
        assert max(peaks) < baseline + 400 * MiB  # a few copies of one upload, not ten
        assert settled < baseline + 120 * MiB, (baseline, settled)
        assert shutil.disk_usage(tempfile.gettempdir()).used < tmp_before + 16 * MiB
    finally:
        gateway.stop()
        store.flushdb()


def test_a_chunked_gigabyte_is_refused_without_being_read(gateway):
    """A chunked upload (no Content-Length) is cut at the limit: 413, and the
    rest is never read, kept or spooled."""
    before = rss(gateway)
    tmp_before = shutil.disk_usage(tempfile.gettempdir()).used
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    head = (
        "POST /api/detect/face/video HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {gateway.api_key}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="v.avi"\r\n'
    part += b"Content-Type: video/x-msvideo\r\n\r\n"
    sock.sendall(head.encode() + f"{len(part):x}\r\n".encode() + part + b"\r\n")
    chunk = b"\x00" * MiB
    sent, answer = 0, b""
    try:
        while sent < 1024 * MiB:
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
            if select.select([sock], [], [], 0)[0]:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:  # the answer's head and body may come in separate segments
        sock.settimeout(30)
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            if not (data := sock.recv(65536)):
                break
            answer += data
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"limit" in answer
    assert sent < 200 * MiB  # it stopped reading soon after the 60 MiB limit
    assert rss(gateway) < before + 150 * MiB
    assert shutil.disk_usage(tempfile.gettempdir()).used < tmp_before + 16 * MiB
    print(f"1 GiB chunked upload refused after {sent / MiB:.0f} MiB sent")


# The preview budget, small so that the test is quick: 2 MiB uploads, each held
# by Redis as 2 MiB (its jemalloc size class), so 2 per tenant and 3 in all.
IMAGE_LIMIT = 2 * MiB
PREVIEW_CAPS = {"GATEWAY_PREVIEW_BYTES_PER_TENANT": 5 * MiB, "GATEWAY_PREVIEW_BYTES_TOTAL": 7 * MiB}
SMALL_QUEUE_CAP = 64 * MiB  # 20 queued uploads fit; the other 20 run inline (?wait=true)


def test_uploads_kept_for_the_console_stay_within_their_byte_budget(tmp_path, object_server):
    """Two bursts of 40 concurrent uploads just under the limit, from two tenants:
    every task is accepted and succeeds, Redis stays under the maxmemory the
    caps call for (the count-only design would keep 80 previews, 160 MiB, past
    it), the previews fit their budgets (as counted and as Redis holds them),
    the newest are kept and the oldest dropped, and the console's /input says
    why a dropped one is gone."""
    env = {"GATEWAY_MAX_IMAGE_BYTES": IMAGE_LIMIT, "GATEWAY_MAX_QUEUED_BYTES": SMALL_QUEUE_CAP,
           **PREVIEW_CAPS}  # fmt: skip
    settings = GatewaySettings(**{k.removeprefix("GATEWAY_").lower(): v for k, v in env.items()})
    # headroom: records, events, and the uploads on their way in (Redis holds each
    # whole until its script runs; the gateway sends it a few at a time)
    maxmemory = redis_maxmemory(settings, headroom=32 * MiB)
    server = RedisServer(tmp_path, aof=False,
                         args=("--maxmemory", str(maxmemory), "--maxmemory-policy", "noeviction"))  # fmt: skip
    server.start()
    store = redis.Redis.from_url(server.url)
    gateway = GatewayProcess(
        "gateway",
        env={"REDIS_URL": server.url, "GATEWAY_FACE_TARGETS": object_server.address,
             "GATEWAY_OBJECT_TARGETS": object_server.address, "GATEWAY_WAIT_TIMEOUT_S": "120",
             **{k: str(v) for k, v in env.items()}},
    )  # fmt: skip
    rng = np.random.default_rng(7)
    image = encode(rng.integers(0, 255, (832, 832, 3), dtype=np.uint8))  # noise: no compression
    assert IMAGE_LIMIT - 32 * 1024 < len(image) < IMAGE_LIMIT
    try:
        gateway.start()
        keys = {tenant: create_key(server.url, "client", tenant) for tenant in ("alpha", "beta")}
        store.config_resetstat()  # used_memory_peak from here
        bursts: list[list[tuple[str, str]]] = []  # (tenant, task id) per burst
        with gateway.client(timeout=180) as admin:
            for _burst in range(2):

                def one(i: int) -> tuple[str, str]:
                    tenant = ("alpha", "beta")[i % 2]
                    headers = {"Authorization": f"Bearer {keys[tenant]}"}
                    with httpx.Client(base_url=gateway.url, headers=headers, timeout=180) as http:
                        wait = {"wait": "true"} if i % 4 < 2 else {}  # half inline, half queued
                        r = submit(http, "/api/detect/object/image", image, "n.png", "image/png",
                                   **wait)  # fmt: skip
                    assert r.status_code in (200, 202), (r.status_code, r.text)  # never refused
                    return tenant, r.json()["task_id"]

                with ThreadPoolExecutor(40) as pool:
                    burst = list(pool.map(one, range(40)))
                for _tenant, task_id in burst:
                    assert wait_done(admin, task_id)["status"] == "succeeded"
                bursts.append(burst)
                assert_previews_within_budget(store, maxmemory)

            tasks = {tid: admin.get(f"/api/task/{tid}").json() for b in bursts for _, tid in b}
            kept = {tid for tid in tasks if store.exists(f"percept:preview:{tid}")}
            first, second = ({tid for _, tid in burst} for burst in bursts)
            # the newest are kept: none of the first burst, and only tasks among the
            # last ones to finish (finishes close together may reach Redis swapped:
            # one carrying its upload may wait for another's; the exact order is
            # test_previews_make_room_oldest_first's)
            assert kept and kept <= second, (len(kept & first), len(kept))
            assert len(kept) == 3  # 3 x 2 MiB fill the 7 MiB; a 4th would not fit
            for tenant in ("alpha", "beta"):
                mine = sorted((t for t in tasks.values() if t["tenant"] == tenant),
                              key=lambda t: datetime.fromisoformat(t["finished_at"]))  # fmt: skip
                latest = {t["task_id"] for t in mine[-8:]}
                assert {tid for tid in kept if tasks[tid]["tenant"] == tenant} <= latest, tenant
            survivor = next(iter(kept))
            shown = admin.get(f"/api/task/{survivor}/input")
            assert shown.status_code == 200 and shown.content == image
            for dropped in (bursts[0][0][1], next(iter(second - kept))):
                gone = admin.get(f"/api/task/{dropped}/input")
                assert gone.status_code == 404, gone.text
                error = gone.json()["error"]
                assert error["code"] == "input_not_kept"
                assert "GATEWAY_PREVIEW_BYTES_PER_TENANT" in error["message"]
        print(
            f"Redis peak {store.info('memory')['used_memory_peak'] / MiB:.1f} MiB "
            f"(maxmemory {maxmemory / MiB:.0f} MiB) for 80 uploads of {len(image) / MiB:.2f} MiB; "
            f"{len(kept)} previews kept"
        )
    finally:
        gateway.stop()
        server.stop()


def assert_previews_within_budget(store: redis.Redis, maxmemory: int) -> None:
    """The previews' accounting, what Redis really holds for them, and Redis itself
    are within their bounds."""
    info = store.info("memory")
    assert info["maxmemory"] == maxmemory and info["maxmemory_policy"] == "noeviction"
    assert info["used_memory_peak"] <= maxmemory, (info["used_memory_peak"], maxmemory)
    counted = {k.decode(): int(v) for k, v in store.hgetall("percept:previews:bytes").items()}
    held: dict[str, int] = {}
    for key in store.scan_iter(match="percept:preview:*", count=1000):
        task_id = key.decode().rsplit(":", 1)[1]
        tenant = store.hget(f"percept:task:{task_id}", "tenant").decode()
        held[tenant] = held.get(tenant, 0) + store.memory_usage(key)
    per_tenant = PREVIEW_CAPS["GATEWAY_PREVIEW_BYTES_PER_TENANT"]
    total = PREVIEW_CAPS["GATEWAY_PREVIEW_BYTES_TOTAL"]
    assert counted.get("all", 0) == sum(held.values()) <= total, (counted, held)
    for tenant, size in held.items():
        assert counted[f"t:{tenant}"] == size <= per_tenant, (tenant, counted, held)


def test_previews_make_room_oldest_first(redis_url):
    """Previews kept one after another: exactly the newest that fit stay (a
    tenant's own oldest make room first, then anyone's), the accounting is what
    Redis holds, and a preview whose time ran out stops counting."""
    import asyncio

    from gateway.jobs import JobStore, Status

    per_tenant, total = 5 * MiB, 8 * MiB
    store = JobStore.from_url(fresh_db(redis_url, 13), 600, 600, ["detect:image"],
                              keep_input_s=600, preview_bytes=(per_tenant, total))  # fmt: skip
    tenants = ["a", "a", "b", "a", "a", "b", "b", "a", "b", "b", "a", "a"]

    async def keep(tenant: str, size: int = MiB) -> str:
        task_id, _ = await store.submit("detect", "image", {}, b"x" * size, tenant=tenant)
        await store.start(task_id, 3)
        await store.finish(task_id, Status.SUCCEEDED, result={})
        return task_id

    async def held() -> dict[str, int]:
        out: dict[str, int] = {}
        async for key in store.raw.scan_iter(match="percept:preview:*"):
            task_id = key.decode().rsplit(":", 1)[1]
            tenant = await store.redis.hget(store.task_key(task_id), "tenant")
            out[tenant] = out.get(tenant, 0) + await store.raw.memory_usage(key)
        return out

    async def main() -> None:
        kept: list[tuple[str, str, int]] = []  # what should stay: (id, tenant, bytes)
        for tenant in tenants:
            task_id = await keep(tenant)
            size = await store.raw.memory_usage(store.preview_key(task_id))
            kept.append((task_id, tenant, size))
            for budget, mine in ((per_tenant, tenant), (total, None)):
                while sum(s for _, t, s in kept if mine in (None, t)) > budget:
                    kept.remove(next(k for k in kept if mine in (None, k[1])))
            present = {tid for tid, _, _ in kept}
            assert {k.decode().rsplit(":", 1)[1] async for k in
                    store.raw.scan_iter(match="percept:preview:*")} == present  # fmt: skip
            in_all, by_tenant = await store.preview_bytes_held()
            assert by_tenant == await held() and in_all == sum(by_tenant.values()) <= total
            assert max(by_tenant.values()) <= per_tenant
        assert len(kept) < len(tenants)  # some made room
        # one larger than a whole budget is not kept, and drops nothing
        big = await keep("a", 6 * MiB)
        assert await store.preview(big) is None
        assert await store.preview_bytes_held() == (sum(s for *_, s in kept), await held())
        # a preview that expired stops counting at the next keep
        gone = kept[0][0]
        await store.raw.delete(store.preview_key(gone))
        await store.redis.zadd("percept:previews", {gone: 0})  # kept long ago
        await keep("b", 1000)
        assert gone not in await store.redis.hgetall("percept:previews:sizes")
        in_all, by_tenant = await store.preview_bytes_held()
        assert by_tenant == await held() and in_all == sum(by_tenant.values())
        await store.close()

    asyncio.run(main())
