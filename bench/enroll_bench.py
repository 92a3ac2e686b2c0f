"""Face enrollment end to end: how many faces per second a face replica enrolls
from photos, through gRPC and through the REST gateway, against the same work
without a store. Printed side by side in one run, never asserted.

For each store (the SQLite default, and PostgreSQL when one answers):

1. gRPC DetectFaces with encodings (decode, detect, encode: the model's work
   alone, no store) - the baseline;
2. gRPC EnrollFaces (the same work for the largest face, plus the store write
   and the replica's index update);
3. REST POST /api/collections/{id}/faces through the gateway (upload checks,
   the same gRPC call, JSON).

Photo: matplotlib's grace_hopper.jpg (512x600, one face). `concurrency`
requests in flight (default 2 x workers), after a warm-up; the three figures
alternate over `rounds` rounds and each is the median.

python -m bench.enroll_bench [--images N] [--rounds R] [--concurrency C] [--pg-admin-url URL] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from pathlib import Path

import grpc
import httpx
import redis
from percept.common.v1 import image_pb2
from percept.face.v1 import face_service_pb2 as pb
from percept.face.v1 import face_service_pb2_grpc

from harness.processes import GatewayProcess, ServerProcess

PG_ADMIN_URL = os.environ.get(
    "PERCEPT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def grace_hopper() -> bytes:
    import matplotlib

    return Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg").read_bytes()


async def rate(call, n: int, concurrency: int) -> float:
    """Calls per second over n calls, `concurrency` in flight, after a warm-up."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await call(i)

    await asyncio.gather(*(one(-1 - i) for i in range(concurrency)))
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - start)


async def measure(
    face: ServerProcess, gateway: GatewayProcess, content: bytes, n: int, c: int, rounds: int
):
    collection = f"bench-{uuid.uuid4().hex[:8]}"
    image = image_pb2.Image(content=content)
    async with grpc.aio.insecure_channel(face.address) as channel:
        stub = face_service_pb2_grpc.FaceServiceStub(channel)
        await stub.CreateCollection(pb.CreateCollectionRequest(collection_id=collection))

        async def detect(i: int) -> None:
            response = await stub.DetectFaces(
                pb.DetectFacesRequest(image=image, options=pb.FaceOptions(return_encodings=True)),
                timeout=300,
            )
            assert len(response.faces) == 1

        async def enroll(i: int) -> None:
            response = await stub.EnrollFaces(
                pb.EnrollFacesRequest(
                    collection_id=collection, image=image, subject=f"person-{i % 50}"
                ),
                timeout=300,
            )
            assert len(response.faces) == 1

        async with httpx.AsyncClient(
            base_url=gateway.url, headers=gateway.headers, timeout=300
        ) as http:

            async def enroll_rest(i: int) -> None:
                response = await http.post(
                    f"/api/collections/{collection}/faces",
                    files={"file": ("grace.jpg", content, "image/jpeg")},
                    data={"subject": f"person-{i % 50}"},
                )
                assert response.status_code == 201, response.text

            # Rounds alternate the three, so a noisy neighbour hits them alike;
            # each figure is the median of its rounds.
            rates: list[list[float]] = [[], [], []]
            for _ in range(rounds):
                for figure, call in enumerate((detect, enroll, enroll_rest)):
                    rates[figure].append(await rate(call, n, c))
        faces = (
            await stub.DescribeCollection(pb.DescribeCollectionRequest(collection_id=collection))
        ).collection.face_count
        assert faces == 2 * rounds * (n + c), faces
        await stub.DeleteCollection(pb.DeleteCollectionRequest(collection_id=collection))
    return tuple(statistics.median(r) for r in rates)


def bench_store(label: str, url: str, content: bytes, args, redis_url: str) -> None:
    workers = os.cpu_count() or 1
    face = ServerProcess(
        "face_service", env={"FACE_WORKERS": str(workers), "FACE_GALLERY_URL": url}
    ).start()
    try:
        redis.Redis.from_url(redis_url).flushdb()
        gateway = GatewayProcess(
            "gateway",
            env={
                "REDIS_URL": redis_url,
                "GATEWAY_FACE_TARGETS": face.address,
                "GATEWAY_OBJECT_TARGETS": face.address,
            },
        ).start()
        try:
            concurrency = args.concurrency or 2 * workers
            detect, grpc_rate, rest_rate = asyncio.run(
                measure(face, gateway, content, args.images, concurrency, args.rounds)
            )
        finally:
            gateway.stop()
    finally:
        face.stop()
    print(
        f"{label}: {workers} workers, {concurrency} in flight, median of {args.rounds} rounds of "
        f"{args.images} photos\n"
        f"  detect + encode, gRPC (no store)      {detect:6.2f} faces/s\n"
        f"  enroll, gRPC                          {grpc_rate:6.2f} faces/s  = {grpc_rate / detect:.2f}x the model's rate\n"
        f"  enroll, REST through the gateway      {rest_rate:6.2f} faces/s  = {rest_rate / grpc_rate:.2f}x gRPC",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=40, help="photos per figure and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=0)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    redis_url = f"{base}/12"
    content = grace_hopper()
    print(f"face enrollment end to end: grace_hopper.jpg ({len(content)} bytes, one face)")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        bench_store(
            "SQLite", f"sqlite:///{Path(tmp) / 'gallery.sqlite3'}", content, args, redis_url
        )
    if args.no_postgres:
        return
    import psycopg

    name = f"percept_enroll_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(args.pg_admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL: skipped ({exc})")
        return
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            info = psycopg.conninfo.conninfo_to_dict(args.pg_admin_url)
            url = (
                f"postgresql://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:"
                f"{info.get('port', 5432)}/{name}"
            )
            bench_store("PostgreSQL", url, content, args, redis_url)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
