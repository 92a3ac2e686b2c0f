"""Gateway benchmarks: printed side by side in one run.

1. submit latency (upload -> 202) p50/p99 with 1, 4 and 8 concurrent
   keep-alive clients - target p99 <= 10 ms on loopback (dispatchers off, so
   only the API is measured; the load generator shares the 2 cores);
2. end-to-end face detection throughput through the gateway (submit with
   ?wait=true) vs direct gRPC on the same backend, same concurrency - target
   >= 0.90x.

python -m bench.gateway_bench [--submits N] [--images N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import grpc
import redis
from percept.common.v1 import image_pb2
from percept.face.v1 import face_service_pb2 as pb
from percept.face.v1 import face_service_pb2_grpc

from bench.common import rest_rate
from bench.http_load import upload_request
from harness.processes import GatewayProcess, ServerProcess

FACE_PATH = "/api/detect/face/image"


def zidane() -> bytes:
    import ultralytics

    return (Path(ultralytics.__file__).parent / "assets" / "zidane.jpg").read_bytes()


async def submit_latencies(
    host: str,
    port: int,
    content: bytes,
    n: int,
    concurrency: int,
    headers: dict[str, str],
    path: str = FACE_PATH,
) -> list[float]:
    """Upload latencies over `concurrency` keep-alive connections (requests built
    once, raw: the load generator must cost far less CPU than the server)."""
    request = upload_request(host, port, path, content, headers=headers)
    latencies: list[float] = []
    remaining = [n]

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for warm in range(5 + n):
                if warm >= 5:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                start = time.perf_counter()
                writer.write(request)
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                if warm >= 5:
                    latencies.append(time.perf_counter() - start)
                assert b" 202 " in status, status
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies


async def direct(address: str, content: bytes, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = face_service_pb2_grpc.FaceServiceStub(channel)

        async def one() -> None:
            async with sem:
                await stub.DetectFaces(
                    pb.DetectFacesRequest(image=image_pb2.Image(content=content)), timeout=300
                )

        await asyncio.gather(*(one() for _ in range(concurrency)))
        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submits", type=int, default=600)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    redis_url = f"{base}/12"
    redis.Redis.from_url(redis_url).flushdb()
    content = zidane()
    cores = os.cpu_count() or 1
    face = ServerProcess("face_service", env={"FACE_WORKERS": str(cores)}).start()
    env = {
        "REDIS_URL": redis_url,
        "GATEWAY_FACE_TARGETS": face.address,
        "GATEWAY_OBJECT_TARGETS": face.address,
    }
    try:
        print(f"gateway benchmarks: {cores} cores, zidane.jpg ({len(content)} bytes)")
        api = GatewayProcess("gateway", env={**env, "GATEWAY_DISPATCHERS": "false"}).start()
        try:
            for clients in (1, 4, args.concurrency):
                latencies = asyncio.run(
                    submit_latencies(
                        "127.0.0.1", api.port, content, args.submits, clients, api.headers
                    )
                )
                q = statistics.quantiles(latencies, n=100)
                p50, p99 = q[49] * 1000, q[98] * 1000
                verdict = "ok" if p99 <= 10 else "ABOVE TARGET"
                print(
                    f"1. submit latency, {clients} concurrent client(s), {len(latencies)} uploads: "
                    f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, {len(latencies) / sum(latencies) * clients:.0f} uploads/s "
                    f"(target p99 <= 10 ms) {verdict}"
                )
        finally:
            api.stop()
        redis.Redis.from_url(redis_url).flushdb()
        gateway = GatewayProcess(
            "gateway", env={**env, "GATEWAY_FACE_CONCURRENCY": str(2 * cores)}
        ).start()
        try:
            concurrency = 2 * cores
            base_rate = asyncio.run(direct(face.address, content, args.images, concurrency))
            ours = asyncio.run(
                rest_rate(
                    gateway.url, FACE_PATH, content, args.images, concurrency, gateway.headers
                )
            )
        finally:
            gateway.stop()
        ratio = ours / base_rate
        print(
            f"2. face images end to end: gateway {ours:.2f} vs direct gRPC {base_rate:.2f} images/s "
            f"ratio {ratio:.2f}x (target >= 0.9x) {'ok' if ratio >= 0.9 else 'BELOW TARGET'}"
        )
    finally:
        face.stop()
        redis.Redis.from_url(redis_url).flushdb()


if __name__ == "__main__":
    main()
