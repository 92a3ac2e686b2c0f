"""A burst of big uploads: what it costs the gateway's memory, Redis and everyone else.

40 uploads at once, each just under the per-upload limit (GATEWAY_MAX_IMAGE_BYTES,
16 MiB by default: noise PNGs of ~15.3 MiB), twice, against the gateway with its
default settings, `make run`'s own Redis (scripts/run_stack.py's redis_child: its
maxmemory from the gateway's caps, noeviction) and one object replica. Measured:

- the gateway's RSS at idle, at the peak, and 5 / 30 / 60 s after the last task ended
  (target: back within 1.5x idle within 60 s);
- Redis: used_memory's peak vs maxmemory, and the previews kept vs their budget;
- a small request from another key (a 64x64 upload, answered 202), one at a time all
  along: its latency at idle and during the burst, p50 / p99 (target p99 < 1 s).

python -m bench.burst_bench [--uploads 40] [--rounds 2]   (make bench-burst)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
import redis

from bench.http_load import Connection, get_request, upload_request
from gateway.settings import GatewaySettings, redis_maxmemory
from harness.processes import ROOT, GatewayProcess, ServerProcess, create_key

MiB = 1024 * 1024
DEMO_MODEL = ROOT / "object_service" / "models" / "shapes-yolo.pt"
PATH = "/api/detect/object/image"


def noise_png(limit: int) -> bytes:
    """A PNG just under `limit` bytes: noise does not compress."""
    side = int(((limit - 256 * 1024) / 3) ** 0.5)
    rng = np.random.default_rng(0)
    ok, buf = cv2.imencode(".png", rng.integers(0, 255, (side, side, 3), dtype=np.uint8))
    assert ok and len(buf) < limit, len(buf)
    return buf.tobytes()


def small_png() -> bytes:
    ok, buf = cv2.imencode(".png", np.full((64, 64, 3), 200, np.uint8))
    return buf.tobytes()


def make_run_redis(run_dir: Path):
    """`make run`'s Redis, as scripts/run_stack.py starts it, in a run directory of ours."""
    os.environ["PERCEPT_RUN_DIR"] = str(run_dir)
    sys.path.insert(0, str(ROOT / "scripts"))
    run_stack = importlib.import_module("run_stack")
    run_stack.LOGS.mkdir(parents=True, exist_ok=True)
    child, url = run_stack.redis_child(sys.executable)
    child.start()
    deadline = time.monotonic() + 30
    while not child.ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis did not start; see {child.log}")
        time.sleep(0.1)
    return child, url


class Sampler:
    """The gateway's RSS and Redis' used_memory, sampled in a thread."""

    def __init__(self, pid: int, url: str) -> None:
        self.process = psutil.Process(pid)
        self.store = redis.Redis.from_url(url, socket_timeout=60)  # Redis may stall for seconds
        self.rss_peak = 0
        self.redis_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return self.process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.rss_peak = max(self.rss_peak, self.rss())
            self.redis_peak = max(self.redis_peak, self.store.info("memory")["used_memory"])

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def small_requests(port: int, request: bytes, stop: asyncio.Event) -> list[float]:
    """Latencies (s) of small submits, one at a time every 20 ms, until `stop`."""
    conn = Connection("127.0.0.1", port)
    latencies = []
    try:
        while not stop.is_set():
            begin = time.perf_counter()
            status, body = await conn.exchange(request)
            latencies.append(time.perf_counter() - begin)
            if status != 202:
                raise RuntimeError(f"a small submit answered HTTP {status}: {body[:200]!r}")
            await asyncio.sleep(0.02)
    finally:
        conn.close()
    return latencies


BUSY = [0]  # big submits answered 503 uploads_busy (then retried after Retry-After)


async def burst(port: int, request: bytes, uploads: int, admin: dict[str, str]) -> float:
    """`uploads` big submits at once; returns when every task has ended (monotonic time).
    One told 503 `uploads_busy` (the gateway's upload budget full) comes back after
    its Retry-After, as a client would."""

    async def one() -> str:
        while True:
            conn = Connection("127.0.0.1", port)
            try:
                status, body = await conn.exchange(request)
            finally:
                conn.close()
            if status == 503 and b"uploads_busy" in body:
                BUSY[0] += 1
                await asyncio.sleep(2)
                continue
            if status != 202:
                raise RuntimeError(f"a big submit answered HTTP {status}: {body[:200]!r}")
            return json.loads(body)["task_id"]

    task_ids = await asyncio.gather(*(one() for _ in range(uploads)))
    conn = Connection("127.0.0.1", port)
    try:
        for task_id in task_ids:
            poll = get_request("127.0.0.1", port, f"/api/task/{task_id}", admin)
            while True:
                status, body = await conn.exchange(poll)
                task = json.loads(body)
                if task["status"] in ("succeeded", "failed", "cancelled"):
                    if task["status"] != "succeeded":
                        raise RuntimeError(f"task {task_id} ended {task['status']}: {body[:300]!r}")
                    break
                await asyncio.sleep(0.1)
    finally:
        conn.close()
    return time.monotonic()


async def during(port: int, small: bytes, big: bytes, uploads: int, admin) -> tuple[list, float]:
    stop = asyncio.Event()
    smalls = asyncio.ensure_future(small_requests(port, small, stop))
    ended = await burst(port, big, uploads, admin)
    stop.set()
    return await smalls, ended


async def idle_latencies(port: int, small: bytes, seconds: float) -> list[float]:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return await small_requests(port, small, stop)


async def metrics_text(port: int, admin: dict[str, str]) -> str:
    conn = Connection("127.0.0.1", port)
    try:
        _, body = await conn.exchange(get_request("127.0.0.1", port, "/metrics", admin))
    finally:
        conn.close()
    return body.decode()


def quantiles(latencies: list[float]) -> str:
    q = statistics.quantiles(latencies, n=100)
    return f"p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms (max {max(latencies) * 1000:.0f}, n={len(latencies)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=40, help="big uploads at once")
    parser.add_argument("--rounds", type=int, default=2, help="bursts, one after the other")
    parser.add_argument("--after-s", type=float, default=60.0, help="watch the RSS this long after")
    parser.add_argument(
        "--no-aof", action="store_true", help="turn Redis' append-only file off (what it costs)"
    )
    args = parser.parse_args()
    settings = GatewaySettings()
    big_image, small_image = noise_png(settings.max_image_bytes), small_png()
    run_dir = Path(tempfile.mkdtemp(prefix="percept-burst-"))
    redis_child, url = make_run_redis(run_dir)
    store = redis.Redis.from_url(url)
    replica = ServerProcess(
        "object_service", env={"OBJECT_MODEL": str(DEMO_MODEL), "OBJECT_WORKERS": "2"}
    ).start()
    gateway = GatewayProcess(
        "gateway",
        env={"REDIS_URL": url, "GATEWAY_OBJECT_TARGETS": replica.address,
             "GATEWAY_FACE_TARGETS": replica.address},
    ).start()  # fmt: skip
    try:
        admin = gateway.headers
        keys = {name: create_key(url, "client", name) for name in ("burst", "other")}
        host, port = "127.0.0.1", gateway.port

        def request(image: bytes, key: str) -> bytes:
            return upload_request(
                host, port, PATH, image, headers={"Authorization": f"Bearer {key}"}
            )

        big, small = request(big_image, keys["burst"]), request(small_image, keys["other"])
        maxmemory = int(store.config_get("maxmemory")["maxmemory"])
        if args.no_aof:
            store.config_set("appendonly", "no")
        print(
            f"burst benchmark: {args.rounds} x {args.uploads} uploads of {len(big_image) / MiB:.1f} MiB "
            f"(limit {settings.max_image_bytes / MiB:.0f} MiB) at once; make run's Redis, maxmemory "
            f"{maxmemory / MiB:.0f} MiB (the caps want {redis_maxmemory(settings) / MiB:.0f}), "
            f"{store.config_get('maxmemory-policy')['maxmemory-policy']}, append-only file "
            f"{store.config_get('appendonly')['appendonly']}; previews "
            f"{settings.preview_bytes_per_tenant / MiB:.0f} MiB per tenant, "
            f"{settings.preview_bytes_total / MiB:.0f} MiB in all",
            flush=True,
        )
        calm = asyncio.run(idle_latencies(port, small, 10.0))  # warms the path up too
        time.sleep(2)
        sampler = Sampler(gateway.proc.pid, url)
        idle = sampler.rss()
        store.config_resetstat()
        store.config_set("latency-monitor-threshold", 100)  # Redis' own stalls, >= 100 ms
        store.latency_reset()
        loaded: list[float] = []
        with sampler:
            for _ in range(args.rounds):
                latencies, ended = asyncio.run(during(port, small, big, args.uploads, admin))
                loaded += latencies
        redis_peak = max(sampler.redis_peak, store.info("memory")["used_memory_peak"])
        after = {}
        for mark in sorted({m for m in (5, 30) if m < args.after_s} | {args.after_s}):
            time.sleep(max(0.0, ended + mark - time.monotonic()))
            after[mark] = sampler.rss()
        raw = {k.decode(): int(v) for k, v in store.hgetall("percept:previews:bytes").items()}
        kept = raw.get("all", 0)
        ratio = after[args.after_s] / idle
        p99 = statistics.quantiles(loaded, n=100)[98]
        print(
            f"1. gateway RSS: idle {idle / MiB:.0f} MiB, peak {sampler.rss_peak / MiB:.0f} MiB, "
            + ", ".join(f"{s:.0f} s after {rss / MiB:.0f} MiB" for s, rss in after.items())
            + f": {ratio:.2f}x idle at {args.after_s:.0f} s (target <= 1.5x) "
            + ("ok" if ratio <= 1.5 else "ABOVE TARGET")
        )
        print(
            f"2. Redis: used_memory peak {redis_peak / MiB:.0f} MiB of maxmemory {maxmemory / MiB:.0f} MiB "
            f"({redis_peak / maxmemory:.0%}), {store.info('memory')['used_memory'] / MiB:.0f} MiB after; "
            f"previews kept {kept / MiB:.0f} MiB (budget {settings.preview_bytes_total / MiB:.0f} MiB in all, "
            f"{settings.preview_bytes_per_tenant / MiB:.0f} per tenant) "
            + ("ok" if redis_peak <= maxmemory and kept <= settings.preview_bytes_total else "OVER")
        )
        stalls = {
            e[0].decode() if isinstance(e[0], bytes) else e[0]: e[3] for e in store.latency_latest()
        }
        print(
            "   Redis' own longest stalls (LATENCY LATEST): "
            + (", ".join(f"{event} {ms} ms" for event, ms in stalls.items()) or "none over 100 ms")
        )
        metrics = asyncio.run(metrics_text(port, admin))
        held = next(line.split()[1] for line in metrics.splitlines()
                    if line.startswith("percept_gateway_upload_bytes_inflight_peak "))  # fmt: skip
        print(
            f"   upload bytes the gateway held at once: peak {float(held) / MiB:.0f} MiB (budget "
            f"{settings.max_inflight_upload_bytes / MiB:.0f} MiB); big submits told 503 "
            f"uploads_busy and retried: {BUSY[0]}"
        )
        print(
            f"3. a small request from another key: idle {quantiles(calm)}; during the bursts "
            f"{quantiles(loaded)} (target p99 < 1 s) " + ("ok" if p99 < 1 else "ABOVE TARGET")
        )
        print(
            f"   (the machine's load average, 1 min: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
    finally:
        gateway.stop()
        replica.stop()
        redis_child.proc.terminate()
        redis_child.proc.wait(30)
        shutil.rmtree(run_dir, ignore_errors=True)  # its append-only file: hundreds of MiB


if __name__ == "__main__":
    main()
