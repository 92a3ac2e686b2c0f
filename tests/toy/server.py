"""The toy service: `python -m tests.toy.server --port N` (its generated
Python on PYTHONPATH, see build.py). Two shapes for any image, placed by the
image's size, each with a box, a label, a score, keypoints and a mask; the
first is tracked. A health service says SERVING, as a real replica's does."""

from __future__ import annotations

import argparse
import io
import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from PIL import Image
from toy.v1 import toy_pb2, toy_pb2_grpc

# (label, score, track id, box as fractions of the image: left, top, right, bottom)
SHAPES = (
    ("square", 0.93, 7, (0.1, 0.1, 0.45, 0.55)),
    ("circle", 0.71, 0, (0.55, 0.3, 0.9, 0.85)),
)


def shape(label: str, score: float, track_id: int, box, width: int, height: int):
    left, top, right, bottom = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    cx, cy = (left + right) / 2, (top + bottom) / 2
    point = toy_pb2.Keypoint
    return toy_pb2.Shape(
        box={"left": left, "top": top, "right": right, "bottom": bottom},
        label=label,
        score=score,
        keypoints=[
            point(name="centre", x=cx, y=cy, score=0.9),
            point(name="top", x=cx, y=top, score=0.8),
        ],
        # a diamond inside the box
        mask=[
            {"x": cx, "y": top},
            {"x": right, "y": cy},
            {"x": cx, "y": bottom},
            {"x": left, "y": cy},
        ],
        track_id=track_id,
    )


class Toy(toy_pb2_grpc.ToyServiceServicer):
    def FindShapes(self, request, context):
        try:
            width, height = Image.open(io.BytesIO(request.image.content)).size
        except OSError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"not an image: {exc}")
        count = request.max_shapes or len(SHAPES)
        return toy_pb2.FindShapesResponse(
            items=[shape(*s, width, height) for s in SHAPES[:count]],
            image_width=width,
            image_height=height,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, help="accepted, unused: the toy has none")
    args = parser.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    toy_pb2_grpc.add_ToyServiceServicer_to_server(Toy(), server)
    checks = health.HealthServicer()
    for service in ("", "toy.v1.ToyService"):
        checks.set(service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()


if __name__ == "__main__":
    main()
