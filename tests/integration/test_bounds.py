"""Bounded memory and disk: big uploads are queued within the caps or refused
(503 + Retry-After past the queue's byte cap, 413 past the upload limit,
chunked or not, without reading the rest), and Redis, the gateway's memory and
the disk come back to their baseline once the tasks end."""

from __future__ import annotations

import select
import shutil
import socket
import tempfile
import time

import cv2
import numpy as np
import psutil
import pytest
import redis

from tests.integration.test_gateway import submit
from tests.support import GatewayProcess, fresh_db

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
            time.sleep(2)  # Redis shrinks idle clients' query buffers within a second or so
            info = store.info("memory")
            queued = info["used_memory"] - redis_before
            assert queued < QUEUE_CAP + 16 * MiB, (queued, info["used_memory_dataset"])
            for task_id in accepted:  # ending the tasks deletes their uploads
                assert http.delete(f"/api/task/{task_id}").status_code == 200
            after_cancel = store.info("memory")["used_memory"] - redis_before
            assert after_cancel < 8 * MiB, after_cancel
            assert submit(http, "/api/detect/face/video", big_video, "v.avi",
                          "video/x-msvideo").status_code == 202  # room again  # fmt: skip
            time.sleep(1)
            settled = rss(gateway)
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
                answer = sock.recv(65536)
                break
    except (BrokenPipeError, ConnectionResetError):
        answer = answer or sock.recv(65536)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"limit" in answer
    assert sent < 200 * MiB  # it stopped reading soon after the 60 MiB limit
    assert rss(gateway) < before + 150 * MiB
    assert shutil.disk_usage(tempfile.gettempdir()).used < tmp_before + 16 * MiB
    print(f"1 GiB chunked upload refused after {sent / MiB:.0f} MiB sent")
