"""Face service benchmarks: ratios measured side by side in one run.

Each pair is measured in three alternating rounds; the medians are compared.

1. detection throughput, in-process face_recognition on every core (threads:
   HOG releases the GIL) vs the same images through the gRPC server at
   saturation - target >= 0.97x;
2. detection + encodings through the gRPC server on every core vs in-process
   on one core - target >= 1.7x on 2 cores;
3. video frames/s streamed by DetectFacesInVideo vs in-process decode+detect -
   target >= 0.90x;
4. the service's own cost, straight to a replica over gRPC with a tiny 64x64
   image (the model call is ~1 ms, so the path around it shows): unary p50 at
   one client vs the model call in-process - target <= model + 0.5 ms; and with
   16 calls in flight, the replica's CPU per call beyond the model (server
   process and workers, psutil CPU times) - target <= 0.5 ms.

python -m bench.face_bench [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
from percept.common.v1 import image_pb2, video_pb2
from percept.face.v1 import face_service_pb2 as pb
from percept.face.v1 import face_service_pb2_grpc

from bench.common import alternate, report, stream_rate, video_rate
from face_service import inference
from face_service.inference import FaceOptions
from harness.images import encode
from harness.processes import ServerProcess
from harness.videos import moving_patch_video
from percept_runtime.imaging import decode_image

MAX_PIXELS = 40_000_000


def images() -> list[bytes]:
    import ultralytics
    from skimage import data

    assets = Path(ultralytics.__file__).parent / "assets"
    return [
        (assets / "zidane.jpg").read_bytes(),
        (assets / "bus.jpg").read_bytes(),
        encode(data.astronaut(), ".jpg"),
    ]


_local = threading.local()


def _thread_detector():
    # dlib's detector keeps scratch state: sharing face_recognition's one
    # global detector between threads corrupts memory, so each thread has its own.
    if not hasattr(_local, "detector"):
        import dlib

        _local.detector = dlib.get_frontal_face_detector()
    return _local.detector


def in_process(work: list[bytes], opts: FaceOptions, threads: int) -> float:
    """Images/s decoding + detecting in this process with `threads` threads."""

    def one(content: bytes) -> int:
        rgb = decode_image(content, MAX_PIXELS)
        if threads == 1:
            return len(inference.detect_faces(rgb, opts).faces)
        assert not opts.encodings, "encodings hold the GIL: in-process threads are no baseline"
        return len(_thread_detector()(rgb, opts.upsample))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, work[:threads]))  # warm
        start = time.perf_counter()
        list(pool.map(one, work))
    return len(work) / (time.perf_counter() - start)


def _detect_encoded(content: bytes) -> int:
    opts = FaceOptions(encodings=True)
    return len(inference.detect_faces(decode_image(content, MAX_PIXELS), opts).faces)


def bare_processes(work: list[bytes], processes: int) -> float:
    """Images/s for detection+encodings in plain worker processes, no gRPC: the
    ceiling this machine's cores give the same work."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=ctx, initializer=inference.warm_up) as pool:
        list(pool.map(_detect_encoded, work[:processes]))
        start = time.perf_counter()
        list(pool.map(_detect_encoded, work))
        return len(work) / (time.perf_counter() - start)


def through_grpc(
    address: str, work: list[bytes], options: pb.FaceOptions, concurrency: int
) -> float:
    """Images/s through DetectFaces with `concurrency` calls in flight."""
    with grpc.insecure_channel(address) as channel:
        stub = face_service_pb2_grpc.FaceServiceStub(channel)

        def one(content: bytes) -> int:
            request = pb.DetectFacesRequest(image=image_pb2.Image(content=content), options=options)
            return len(stub.DetectFaces(request, timeout=300).faces)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, work[:concurrency]))  # warm
            start = time.perf_counter()
            list(pool.map(one, work))
        return len(work) / (time.perf_counter() - start)


def video_streamed(address: str, path: Path) -> float:
    with grpc.insecure_channel(address) as channel:
        stub = face_service_pb2_grpc.FaceServiceStub(channel)
        request = pb.DetectFacesInVideoRequest(video=video_pb2.VideoSource(uri=str(path)))
        return stream_rate(lambda: stub.DetectFacesInVideo(request, timeout=600))


def side_by_side(server: ServerProcess, work: list[bytes], video: Path, cores: int) -> None:
    detect_only = FaceOptions()
    ours, base = alternate(
        lambda: through_grpc(server.address, work, pb.FaceOptions(), concurrency=2 * cores),
        lambda: in_process(work, detect_only, threads=cores),
    )
    report(
        f"1. detection: gRPC ({cores} workers) vs in-process ({cores} threads)",
        ours,
        base,
        "images/s",
        0.97,
    )

    with_enc = FaceOptions(encodings=True)
    enc_work = work[: max(len(work) // 2, 2 * cores)]
    ours, base = alternate(
        lambda: through_grpc(
            server.address,
            enc_work,
            pb.FaceOptions(return_encodings=True),
            concurrency=2 * cores,
        ),
        lambda: in_process(enc_work, with_enc, threads=1),
    )
    report(
        f"2. detection+encodings: gRPC ({cores} cores) vs in-process (1 core)",
        ours,
        base,
        "images/s",
        1.7,
    )
    ceiling, single = alternate(
        lambda: bare_processes(enc_work, cores), lambda: bare_processes(enc_work, 1)
    )
    report(
        f"   the machine's ceiling: {cores} bare processes vs 1, no gRPC",
        ceiling,
        single,
        "images/s",
    )

    ours, base = alternate(
        lambda: video_streamed(server.address, video),
        lambda: video_rate(video, lambda rgb: inference.detect_faces(rgb, detect_only)),
    )
    report("3. video 1280x720: streamed vs in-process decode+detect", ours, base, "frames/s", 0.90)


def tiny_image() -> bytes:
    """A 64x64 JPEG of a face (grace_hopper.jpg shrunk): ~1 ms of HOG."""
    import io

    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    buf = io.BytesIO()
    Image.open(path).resize((64, 64)).save(buf, "JPEG")
    return buf.getvalue()


def model_call(content: bytes, n: int) -> tuple[float, float]:
    """(p50 wall seconds, mean CPU seconds) of decode + detect in this process."""
    opts = FaceOptions()
    for _ in range(20):
        inference.detect_encoded_in_worker(content, opts, MAX_PIXELS)
    walls = []
    cpu = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        inference.detect_encoded_in_worker(content, opts, MAX_PIXELS)
        walls.append(time.perf_counter() - start)
    return sorted(walls)[n // 2], (time.process_time() - cpu) / n


def unary_latency(address: str, content: bytes, n: int) -> tuple[float, float]:
    """(p50, p99) seconds of DetectFaces from one client, one call at a time."""
    with grpc.insecure_channel(address) as channel:
        stub = face_service_pb2_grpc.FaceServiceStub(channel)
        request = pb.DetectFacesRequest(image=image_pb2.Image(content=content))
        for _ in range(50):
            stub.DetectFaces(request, timeout=30)
        walls = []
        for _ in range(n):
            start = time.perf_counter()
            stub.DetectFaces(request, timeout=30)
            walls.append(time.perf_counter() - start)
    walls.sort()
    return walls[n // 2], walls[int(n * 0.99)]


def server_cpu_per_call(
    server: ServerProcess, content: bytes, n: int, in_flight: int
) -> tuple[float, float]:
    """CPU seconds the replica spends per call with `in_flight` calls
    outstanding, as (server process, its workers); the client is one asyncio
    thread."""
    import asyncio

    import psutil

    proc = psutil.Process(server.proc.pid)

    def cpu() -> tuple[float, float]:
        own = sum(proc.cpu_times()[:2])
        workers = 0.0
        for p in proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                workers += sum(p.cpu_times()[:2])
        return own, workers

    async def drive() -> None:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = face_service_pb2_grpc.FaceServiceStub(channel)
            request = pb.DetectFacesRequest(image=image_pb2.Image(content=content))
            sem = asyncio.Semaphore(in_flight)

            async def one() -> None:
                async with sem:
                    await stub.DetectFaces(request, timeout=60)

            await asyncio.gather(*(one() for _ in range(in_flight * 4)))
            before = cpu()
            await asyncio.gather(*(one() for _ in range(n)))
            after = cpu()
            out.append(tuple((a - b) / n for a, b in zip(after, before, strict=True)))

    out: list[float] = []
    asyncio.run(drive())
    return out[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=4, help="passes over the test images per measurement"
    )
    parser.add_argument(
        "--only-overhead", action="store_true", help="run only 4. (the service's own cost)"
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    work = images() * args.rounds * cores
    inference.warm_up()
    tmp = Path(tempfile.mkdtemp(prefix="percept-bench-"))
    from skimage import data

    video = tmp / "bench.avi"
    moving_patch_video(
        video,
        np.ascontiguousarray(data.astronaut()[40:210, 140:300]),
        n_frames=12 * cores * args.rounds // 2,
        size=(1280, 720),
        step=(20, 10),
    )
    server = ServerProcess(
        "face_service", env={"FACE_WORKERS": str(cores), "FACE_VIDEO_ALLOWED_DIRS": str(tmp)}
    ).start()
    try:
        print(
            f"face benchmarks: {cores} cores, {len(work)} images per run (zidane, bus, astronaut)"
        )
        if not args.only_overhead:
            side_by_side(server, work, video, cores)
        tiny = tiny_image()
        model_p50, model_cpu = model_call(tiny, 500)
        p50, p99 = unary_latency(server.address, tiny, 1000)
        extra = (p50 - model_p50) * 1000
        print(
            f"4. tiny 64x64 image, one client: unary p50 {p50 * 1000:.2f} ms (p99 {p99 * 1000:.2f} ms) "
            f"vs the model call {model_p50 * 1000:.2f} ms in-process: +{extra:.2f} ms "
            f"(target <= +0.5 ms) {'ok' if extra <= 0.5 else 'ABOVE TARGET'}",
            flush=True,
        )
        own, workers = server_cpu_per_call(server, tiny, 3000, in_flight=16)
        beyond = (own + workers - model_cpu) * 1000
        print(
            f"   16 calls in flight: replica CPU {(own + workers) * 1000:.2f} ms per call (server "
            f"process {own * 1000:.2f}, workers {workers * 1000:.2f}), the model "
            f"{model_cpu * 1000:.2f} ms: {beyond:.2f} ms beyond the model (target <= 0.5 ms) "
            f"{'ok' if beyond <= 0.5 else 'ABOVE TARGET'}",
            flush=True,
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
