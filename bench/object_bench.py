"""Object service benchmarks: ratios measured side by side in one run.

1. in-process ultralytics predict (one model, every core) vs the same images
   through the gRPC server at saturation - target >= 0.95x;
2. video frames/s streamed by DetectObjectsInVideo vs in-process decode+predict
   - target >= 0.90x;
3. ONNX Runtime vs PyTorch, in-process, same weights and threads, for the demo
   model and for the YOLOv8n architecture at 640 (reported; the CPU default);
4. batch size effect: frames/s per batch size for video frames, in-process.

python -m bench.object_bench [--model PATH] [--images N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
from percept.common.v1 import image_pb2, video_pb2
from percept.object.v1 import object_service_pb2 as pb
from percept.object.v1 import object_service_pb2_grpc
from ultralytics import YOLO

from bench.common import report, stream_rate, video_rate
from harness.images import encode
from harness.processes import ServerProcess
from harness.videos import moving_shapes_video
from object_service import synthetic
from object_service.inference import DetectOptions, Detector, ModelConfig, prepare
from object_service.settings import DEMO_MODEL
from percept_runtime.imaging import decode_image

MAX_PIXELS = 40_000_000


def per_second(n: int, fn) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def in_process_images(detector: Detector, work: list[bytes]) -> float:
    detector.detect([decode_image(work[0], MAX_PIXELS)], DetectOptions())
    return per_second(
        len(work),
        lambda: [detector.detect([decode_image(c, MAX_PIXELS)], DetectOptions()) for c in work],
    )


def grpc_images(address: str, work: list[bytes], concurrency: int) -> float:
    with grpc.insecure_channel(address) as channel:
        stub = object_service_pb2_grpc.ObjectServiceStub(channel)

        def one(content: bytes) -> int:
            return len(
                stub.DetectObjects(
                    pb.DetectObjectsRequest(image=image_pb2.Image(content=content)), timeout=120
                ).detections
            )

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, work[:concurrency]))
            return per_second(len(work), lambda: list(pool.map(one, work)))


def streamed_video(address: str, path: Path) -> float:
    with grpc.insecure_channel(address) as channel:
        stub = object_service_pb2_grpc.ObjectServiceStub(channel)
        request = pb.DetectObjectsInVideoRequest(video=video_pb2.VideoSource(uri=str(path)))
        return stream_rate(lambda: stub.DetectObjectsInVideo(request, timeout=600))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(DEMO_MODEL))
    parser.add_argument("--images", type=int, default=120)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="percept-bench-"))
    rng = np.random.default_rng(1)
    work = [encode(synthetic.make_scene(rng)[0], ".jpg") for _ in range(args.images)]
    video = tmp / "bench.avi"
    moving_shapes_video(video, n_frames=args.images)
    frames = [synthetic.make_scene(rng)[0] for _ in range(32)]

    base_config = ModelConfig(args.model, cache_dir=tmp / "cache", threads=cores)
    onnx = Detector(prepare(base_config))
    print(
        f"object benchmarks: {cores} cores, model {onnx.info.name} at {onnx.imgsz}px, {len(work)} images 640x480"
    )

    server = ServerProcess(
        "object_service",
        env={"OBJECT_MODEL": args.model, "OBJECT_WORKERS": str(cores), "OBJECT_THREADS": "1",
             "OBJECT_CACHE_DIR": str(tmp / "cache"), "OBJECT_VIDEO_ALLOWED_DIRS": str(tmp)},
    ).start()  # fmt: skip
    try:
        base = in_process_images(onnx, work)
        ours = grpc_images(server.address, work, concurrency=2 * cores)
        report(
            f"1. images: gRPC ({cores} workers x 1 thread) vs in-process ({cores} threads)",
            ours,
            base,
            "images/s",
            0.95,
        )

        base = video_rate(video, lambda rgb: onnx.detect([rgb], DetectOptions()))
        ours = streamed_video(server.address, video)
        report("2. video: streamed vs in-process decode+predict", ours, base, "frames/s", 0.90)
    finally:
        server.stop()

    print("3. backends in-process, same weights, same threads (the CPU default follows this):")
    yolov8n = tmp / "yolov8n-random.pt"
    YOLO("yolov8n.yaml").save(yolov8n)  # the yolov8n architecture; speed does not depend on weights
    for weights, imgsz, label in (
        (args.model, 0, "demo model"),
        (str(yolov8n), 640, "YOLOv8n at 640"),
    ):
        for threads in sorted({1, cores}):
            pair = {}
            for backend in ("onnx", "pytorch"):
                config = ModelConfig(
                    weights, backend=backend, imgsz=imgsz, threads=threads, cache_dir=tmp / "cache"
                )
                pair[backend] = in_process_images(Detector(prepare(config)), work[:40])
            report(
                f"   {label}, {threads} thread(s): ONNX Runtime vs PyTorch",
                pair["onnx"],
                pair["pytorch"],
                "images/s",
            )

    print(
        "4. batch size, in-process, frames/s (batching pays only where the ratio to batch 1 exceeds 1):"
    )
    for threads in sorted({1, cores}):
        detector = Detector(
            prepare(ModelConfig(args.model, cache_dir=tmp / "cache", threads=threads))
        )
        rates = {}
        for batch in (1, 2, 4, 8):
            detector.detect(frames[:batch], DetectOptions())
            rates[batch] = per_second(
                len(frames),
                lambda b=batch, d=detector: [
                    d.detect(frames[i : i + b], DetectOptions()) for i in range(0, len(frames), b)
                ],
            )
        cells = "  ".join(f"batch {b}: {r:6.1f} ({r / rates[1]:.2f}x)" for b, r in rates.items())
        print(f"   {threads} thread(s): {cells}")


if __name__ == "__main__":
    main()
