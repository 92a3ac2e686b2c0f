"""The upload bytes a gateway process holds at once stay within its budget
(GATEWAY_MAX_INFLIGHT_UPLOAD_BYTES): a burst of big uploads is admitted a few
at a time, the rest wait their turn or get 503 `uploads_busy` with Retry-After
(never 500, never a reset), a small request is served meanwhile, and every
reservation is given back, also by clients that go away mid-upload."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import redis

from tests.conftest import encode
from tests.support import GatewayProcess, create_key, fresh_db, submit, wait_until

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
IMAGE_LIMIT = 2 * MiB
BUDGET = 6 * MiB  # three big uploads at once
SMALL = MiB


def gauge(http: httpx.Client, name: str) -> float:
    text = http.get("/metrics").text
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


def multipart(image: bytes) -> tuple[bytes, str]:
    """The body and Content-Type of an upload as httpx sends it."""
    request = httpx.Request("POST", "http://x/", files={"file": ("n.png", image, "image/png")})
    return request.read(), request.headers["content-type"]


def test_a_burst_of_uploads_stays_within_the_process_budget(redis_url, object_server):
    rng = np.random.default_rng(3)
    big = encode(rng.integers(0, 255, (832, 832, 3), dtype=np.uint8))  # noise: no compression
    assert IMAGE_LIMIT - 64 * 1024 < len(big) < IMAGE_LIMIT
    small = encode(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    url = fresh_db(redis_url, 14)
    store = redis.Redis.from_url(url)
    gateway = GatewayProcess(
        "gateway",
        env={"REDIS_URL": url, "GATEWAY_FACE_TARGETS": object_server.address,
             "GATEWAY_OBJECT_TARGETS": object_server.address,
             "GATEWAY_DISPATCHERS": "false",  # they stay queued: only the uploads are measured
             "GATEWAY_MAX_IMAGE_BYTES": str(IMAGE_LIMIT), "GATEWAY_MAX_VIDEO_BYTES": str(IMAGE_LIMIT),
             "GATEWAY_MAX_INFLIGHT_UPLOAD_BYTES": str(BUDGET),
             "GATEWAY_UPLOAD_SMALL_BYTES": str(SMALL), "GATEWAY_UPLOAD_WAIT_S": "2"},
    ).start()  # fmt: skip
    other = {"Authorization": f"Bearer {create_key(url, 'client', 'other')}"}
    try:
        with gateway.client(timeout=120) as admin:
            # 1. a burst: each upload is accepted or told to come back, never worse
            def one(_: int) -> httpx.Response:
                with gateway.client(timeout=120) as http:
                    return submit(http, "/api/detect/object/image", big, "n.png", "image/png")

            with ThreadPoolExecutor(16) as pool:
                burst = [pool.submit(one, i) for i in range(16)]
                with httpx.Client(base_url=gateway.url, headers=other, timeout=60) as http:
                    served = submit(http, "/api/detect/object/image", small, "s.png", "image/png")
                answers = [f.result() for f in burst]
            assert served.status_code == 202, served.text  # a small one, from another key
            accepted = []
            for r in answers:
                assert r.status_code in (202, 503), (r.status_code, r.text)
                if r.status_code == 503:
                    assert r.json()["error"]["code"] == "uploads_busy" and r.headers["retry-after"]
                else:
                    accepted.append(r.json()["task_id"])
            assert accepted
            for task_id in accepted:  # each queued whole (the serialized request, its upload in)
                assert store.strlen(f"percept:input:{task_id}") > len(big)
            peak = gauge(admin, "percept_gateway_upload_bytes_inflight_peak")
            # more than one big upload at once, never more than the budget (and
            # the small one, which never waits)
            assert 2 * len(big) < peak <= BUDGET + SMALL, peak
            assert gauge(admin, "percept_gateway_upload_bytes_inflight") == 0
            print(
                f"{len(accepted)} of 16 uploads of {len(big) / MiB:.2f} MiB accepted, "
                f"{16 - len(accepted)} told 503; at most {peak / MiB:.2f} MiB held at once "
                f"(budget {BUDGET / MiB:.0f} MiB)"
            )

            # 2. three clients start big uploads and stall: the budget is full
            body, content_type = multipart(big)
            stalled = []
            for _ in range(3):
                sock = socket.create_connection(("127.0.0.1", gateway.port))
                head = (
                    f"POST /api/detect/object/image HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {gateway.api_key}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                sock.sendall(head.encode() + body[: 100 * 1024])
                stalled.append(sock)
            wait_until(
                lambda: gauge(admin, "percept_gateway_upload_bytes_inflight") >= 3 * len(big)
            )
            refused = submit(admin, "/api/detect/object/image", big, "n.png", "image/png")
            assert refused.status_code == 503, refused.text  # after waiting its turn in vain
            error = refused.json()["error"]
            assert error["code"] == "uploads_busy" and refused.headers["retry-after"] == "2"
            assert "GATEWAY_MAX_INFLIGHT_UPLOAD_BYTES" in error["message"]
            with httpx.Client(base_url=gateway.url, headers=other, timeout=60) as http:
                served = submit(http, "/api/detect/object/image", small, "s.png", "image/png")
            assert served.status_code == 202, served.text  # small ones never wait

            # 3. they go away mid-upload: their bytes are given back
            for sock in stalled:
                sock.close()
            wait_until(lambda: gauge(admin, "percept_gateway_upload_bytes_inflight") == 0)
            again = submit(admin, "/api/detect/object/image", big, "n.png", "image/png")
            assert again.status_code == 202, again.text
            assert gauge(admin, "percept_gateway_upload_bytes_inflight") == 0
    finally:
        gateway.stop()
        store.flushdb()
