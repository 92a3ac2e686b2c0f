"""Live-source benchmarks, printed side by side in one run (one machine: the
object service with the demo shapes model, one source worker, Redis; the
sources are looped files played at their own rate, like cameras):

1. how many 5 fps sources one worker holds with < 1% of frames dropped
   (1, 2, 4, 8 sources; processed fps and drops per step);
2. frames per second when saturated (4 sources of a 60 fps clip) vs the
   in-process ceiling: the same JPEG frames sent over one StreamObjects
   stream, one in flight, from this process (target >= 0.9x);
3. capture-to-event latency at 5 fps: p50 and p95 from the worker's
   percept_source_latency_seconds histogram (target p95 <= 300 ms);
4. the worker's RSS at the start and the end of a soak (--soak seconds, 4
   sources at 5 fps).

python -m bench.sources_bench [--step-s 15] [--soak 60]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import httpx

from harness.processes import (
    GatewayProcess,
    ServerProcess,
    fresh_db,
    threads_and_rss,
    worker_process,
)
from harness.videos import read_frames, write_frames

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "object_service" / "models" / "shapes-yolo.pt"


def histogram(url: str, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a Prometheus histogram, all labels summed."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    buckets: dict[float, float] = {}
    for m in re.finditer(rf'^{name}_bucket{{.*?le="([^"]+)".*?}} (\S+)$', text, re.M):
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        buckets[le] = buckets.get(le, 0) + float(m.group(2))
    return sorted(buckets.items())


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Linear interpolation inside the bucket holding the q-th observation."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = upper, count
    return lower


def ceiling(clip: Path, cache: Path, seconds: float) -> float:
    """Frames/s of the model in this process (1 thread, as the service's one
    worker): the clip's frames as JPEG, decoded and detected one by one."""
    from object_service.inference import DetectOptions, Detector, ModelConfig, prepare
    from percept_runtime.imaging import decode_image

    detector = Detector(prepare(ModelConfig(str(MODEL), cache_dir=cache, threads=1)))
    jpegs = [
        cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])[
            1
        ].tobytes()
        for rgb in read_frames(clip)
    ]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        detector.detect([decode_image(jpegs[n % len(jpegs)], 40_000_000)], DetectOptions())
        n += 1
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--step-s", type=float, default=15.0)
    parser.add_argument("--soak", type=float, default=60.0)
    parser.add_argument("--counts", default="1,2,4,8")
    args = parser.parse_args()
    media = Path(tempfile.mkdtemp(prefix="sources-bench-"))
    clip5, clip60 = media / "five.avi", media / "sixty.avi"
    write_frames(clip5, 50, fps=5)
    write_frames(clip60, 120, fps=60)
    redis_url = fresh_db(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), 14)
    obj = ServerProcess(
        "object_service",
        env={
            "OBJECT_MODEL": str(MODEL),
            "OBJECT_WORKERS": "1",
            "OBJECT_THREADS": "1",
            "OBJECT_CACHE_DIR": str(media),
        },
    ).start()
    env = {
        "REDIS_URL": redis_url,
        "GATEWAY_OBJECT_TARGETS": obj.address,
        "GATEWAY_FACE_TARGETS": "127.0.0.1:9",
        "SOURCES_FILE_DIRS": str(media),
    }
    gateway = GatewayProcess(
        "gateway",
        env={**env, "GATEWAY_AUTH": "disabled", "GATEWAY_DISPATCHERS": "false",
             "GATEWAY_REPLICA_MONITOR": "false"},
    ).start()  # fmt: skip
    worker = worker_process(env, "bench").start()
    metrics = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    c = httpx.Client(base_url=gateway.url, timeout=30)
    print(f"machine: {os.cpu_count()} cores; object service: 1 worker process (demo model, ONNX)")
    try:

        def run(n: int, clip: Path, fps: float, seconds: float, measure=None) -> list[dict]:
            ids = [
                c.post("/api/sources", json={"url": str(clip), "loop": True, "max_fps": fps})
                .json()["id"] for _ in range(n)
            ]  # fmt: skip
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                states = [c.get(f"/api/sources/{s}").json()["status"] for s in ids]
                if all(st.get("frames_processed", 0) > 0 for st in states):
                    break
                time.sleep(0.5)
            first = [c.get(f"/api/sources/{s}").json()["status"] for s in ids]
            time.sleep(seconds)
            last = [c.get(f"/api/sources/{s}").json()["status"] for s in ids]
            if measure is not None:
                measure()  # before the sources (and their series) go
            for s in ids:
                c.delete(f"/api/sources/{s}")
            out = []
            for a, b in zip(first, last, strict=True):
                frames_in = b["frames_in"] - a["frames_in"]
                out.append({
                    "in": frames_in / seconds,
                    "done": (b["frames_processed"] - a["frames_processed"]) / seconds,
                    "dropped": (b["frames_dropped"] - a["frames_dropped"]) / max(frames_in, 1),
                })  # fmt: skip
            time.sleep(2)
            return out

        print("\n1. 5 fps sources on one worker (drops: frames lost while the model was busy)")
        held = 0
        for n in [int(x) for x in args.counts.split(",")]:
            res = run(n, clip5, 5.0, args.step_s)
            done = sum(r["done"] for r in res)
            dropped = sum(r["dropped"] for r in res) / n
            print(f"   {n:>2} sources: processed {done:5.1f} fps of {5 * n} wanted, "
                  f"dropped {dropped:6.2%}")  # fmt: skip
            if dropped < 0.01:
                held = n
        print(f"   held with < 1% dropped: {held} sources at 5 fps")

        print("\n2. saturated: 4 sources of a 60 fps clip (cap 60: 240 fps wanted) vs the model")
        top = ceiling(clip60, media, args.step_s)
        res = run(4, clip60, 60.0, args.step_s)
        total = sum(r["done"] for r in res)
        print(f"   in-process model (1 thread, decode + detect): {top:5.1f} fps")
        print(f"   through the source worker, all sources:       {total:5.1f} fps  "
              f"ratio {total / top:.2f}x (target >= 0.9)")  # fmt: skip

        print("\n3. capture -> event latency at 5 fps (1 source)")
        seen: list = []
        run(1, clip5, 5.0, args.step_s,
            measure=lambda: seen.extend(histogram(metrics, "percept_source_latency_seconds")))  # fmt: skip
        print(f"   p50 {quantile(seen, 0.5) * 1000:.0f} ms, p95 {quantile(seen, 0.95) * 1000:.0f} ms "
              "(target p95 <= 300 ms)")  # fmt: skip

        print(f"\n4. soak: 4 sources at 5 fps for {args.soak:.0f} s")
        threads0, rss0 = threads_and_rss(worker.proc.pid)
        run(4, clip5, 5.0, args.soak)
        threads1, rss1 = threads_and_rss(worker.proc.pid)
        print(f"   worker RSS {rss0 / 1024:.0f} MiB -> {rss1 / 1024:.0f} MiB, "
              f"threads {threads0} -> {threads1}")  # fmt: skip
    finally:
        c.close()
        worker.stop()
        gateway.stop()
        obj.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
