"""The toy backend and its one kind, declared to the gateway: the whole of
what the gateway is told (GATEWAY_DECLARATIONS=tests.toy.declaration).
Its results take the generic shape, which the console draws and the SDK reads."""

from __future__ import annotations

from pathlib import Path

from toy.v1 import toy_pb2

from gateway.declare import backend, kind

TOY = backend(
    "toy",
    toy_pb2.DESCRIPTOR.services_by_name["ToyService"],
    targets="127.0.0.1:50070",
    descriptor_set=Path(toy_pb2.__file__).parents[2] / "toy.binpb",
)

kind(
    "shape_detection",
    "image",
    TOY,
    "FindShapes",
    "/api/detect/shape/image",
    "Find the toy's shapes in an uploaded image",
)
