"""Scale-out benchmark: throughput through the gateway with 1 vs 2 replicas,
each replica given one core (workers=1 / threads=1), measured side by side.
Target for the CPU-bound face path: >= 0.85 x 2 = 1.7x.

python -m bench.scale_bench [--images N]
"""

from __future__ import annotations

import argparse
import asyncio
import os

import numpy as np
import redis

from bench.common import rest_rate
from bench.gateway_bench import zidane
from harness.images import encode
from harness.processes import GatewayProcess, ServerProcess
from object_service import synthetic
from object_service.settings import DEMO_MODEL


def measure(
    kind: str,
    replicas: list[ServerProcess],
    redis_url: str,
    path: str,
    content: bytes,
    n: int,
    **params,
) -> list[float]:
    rates = []
    for count in (1, 2):
        targets = ",".join(r.address for r in replicas[:count])
        gateway = GatewayProcess(
            "gateway",
            env={
                "REDIS_URL": redis_url,
                f"GATEWAY_{kind.upper()}_TARGETS": targets,
                f"GATEWAY_{kind.upper()}_CONCURRENCY": "8",
            },
        ).start()
        try:
            rates.append(
                asyncio.run(
                    rest_rate(gateway.url, path, content, n, 4 * count, gateway.headers, **params)
                )
            )
        finally:
            gateway.stop()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24)
    args = parser.parse_args()
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    redis_url = f"{base}/12"
    redis.Redis.from_url(redis_url).flushdb()
    print(f"scale-out through the gateway: {os.cpu_count()} cores, one core per replica")

    faces = [ServerProcess("face_service", env={"FACE_WORKERS": "1"}).start() for _ in range(2)]
    try:
        one, two = measure(
            "face",
            faces,
            redis_url,
            "/api/detect/face/image",
            zidane(),
            args.images,
            encodings="true",
        )
    finally:
        for server in faces:
            server.stop()
    ratio = two / one
    print(
        f"face detection+encodings: 2 replicas {two:.2f} vs 1 replica {one:.2f} images/s "
        f"ratio {ratio:.2f}x (target >= 1.70x) {'ok' if ratio >= 1.7 else 'BELOW TARGET'}"
    )

    scene = encode(synthetic.make_scene(np.random.default_rng(3))[0], ".jpg")
    objects = [
        ServerProcess(
            "object_service",
            env={"OBJECT_MODEL": str(DEMO_MODEL), "OBJECT_WORKERS": "1", "OBJECT_THREADS": "1"},
        ).start()
        for _ in range(2)
    ]
    try:
        one, two = measure(
            "object", objects, redis_url, "/api/detect/object/image", scene, args.images * 8
        )
    finally:
        for server in objects:
            server.stop()
    print(
        f"object detection: 2 replicas {two:.2f} vs 1 replica {one:.2f} images/s ratio {two / one:.2f}x (reported)"
    )
    redis.Redis.from_url(redis_url).flushdb()


if __name__ == "__main__":
    main()
