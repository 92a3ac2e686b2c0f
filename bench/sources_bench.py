"""Live-source benchmarks, printed side by side in one run (one machine: the
object service with the demo shapes model, one source worker, Redis; the
sources are looped files played at their own rate, like cameras):

1. how many 5 fps sources one worker holds with < 1% of frames dropped
   (1, 2, 4, 8 sources; processed fps and drops per step);
2. frames per second of one saturated source (a 60 fps clip, cap 60) vs the
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
import grpc
import httpx

from tests.sources_support import threads_and_rss, worker_process, write_frames
from tests.support import GatewayProcess, ServerProcess, fresh_db

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


def ceiling(address: str, clip: Path, seconds: float) -> float:
    """Frames/s of one StreamObjects stream, one frame in flight, from this process."""
    from percept.object.v1 import object_service_pb2 as pb

    cap = cv2.VideoCapture(str(clip))
    jpegs = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        jpegs.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    channel = grpc.insecure_channel(address)
    call = channel.stream_stream(
        "/percept.object.v1.ObjectService/StreamObjects",
        request_serializer=pb.StreamObjectsRequest.SerializeToString,
        response_deserializer=pb.StreamObjectsResponse.FromString,
    )
    import queue
    import threading

    requests: queue.Queue = queue.Queue(maxsize=1)
    done = threading.Event()

    def feed():
        i = 0
        while not done.is_set():
            requests.put(pb.StreamObjectsRequest(image={"content": jpegs[i % len(jpegs)]}))
            i += 1

    def gen():
        while not done.is_set():
            yield requests.get()

    threading.Thread(target=feed, daemon=True).start()
    n, start = 0, time.perf_counter()
    for _ in call(gen()):  # one request is queued at a time: ~one in flight
        n += 1
        if time.perf_counter() - start > seconds:
            break
    done.set()
    channel.close()
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
        env={"OBJECT_MODEL": str(MODEL), "OBJECT_WORKERS": "1", "OBJECT_CACHE_DIR": str(media)},
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

        def run(n: int, clip: Path, fps: float, seconds: float) -> list[dict]:
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

        print("\n2. saturated: one source, 60 fps clip, cap 60, vs the in-process ceiling")
        top = ceiling(obj.address, clip60, args.step_s)
        res = run(1, clip60, 60.0, args.step_s)[0]
        print(f"   in-process (one stream, one in flight): {top:5.1f} fps")
        print(f"   source worker:                          {res['done']:5.1f} fps  "
              f"ratio {res['done'] / top:.2f}x (target >= 0.9)")  # fmt: skip

        print("\n3. capture -> event latency at 5 fps (1 source)")
        before = histogram(metrics, "percept_source_latency_seconds")
        run(1, clip5, 5.0, args.step_s)
        after = histogram(metrics, "percept_source_latency_seconds")
        delta = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=False)] or after
        print(f"   p50 {quantile(delta, 0.5) * 1000:.0f} ms, p95 {quantile(delta, 0.95) * 1000:.0f} ms "
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
