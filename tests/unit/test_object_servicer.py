"""ObjectServicer translation and option checks with a fake engine (no model)."""

from __future__ import annotations

import asyncio

import pytest
from percept.common.v1 import image_pb2
from percept.object.v1 import object_service_pb2 as pb

from object_service.inference import (
    Detection,
    DetectOptions,
    ImageDetections,
    ModelConfig,
    ModelInfo,
    WeightsUnavailable,
    locate_weights,
    prepare,
)
from object_service.servicer import ObjectServicer
from percept_runtime.errors import InvalidInput, Unavailable
from percept_runtime.video import VideoPolicy

INFO = ModelInfo(
    "shapes",
    "onnxruntime",
    "cpu",
    320,
    ("circle", "square", "triangle"),
    "/w/shapes.onnx",
    "detect",
)


class FakeEngine:
    video_batch = 2

    def __init__(self, info: ModelInfo | None = INFO) -> None:
        self.info = info
        self.seen: list[DetectOptions] = []

    async def detect_image(self, data: bytes, opts: DetectOptions) -> ImageDetections:
        self.seen.append(opts)
        return ImageDetections(64, 48, [Detection(1, "square", 0.9, 1.5, 2.5, 10.0, 20.0)])

    async def detect_frames(self, frames, opts):
        raise AssertionError("not used")


def servicer(engine=None) -> ObjectServicer:
    return ObjectServicer(engine or FakeEngine(), VideoPolicy(), window=2)


def test_defaults_and_translation():
    engine = FakeEngine()
    response = asyncio.run(
        servicer(engine).DetectObjects(
            pb.DetectObjectsRequest(image=image_pb2.Image(content=b"x")), None
        )
    )
    assert engine.seen == [
        DetectOptions(confidence=0.25, iou=0.7, classes=None, max_detections=300)
    ]
    assert engine.seen == [DetectOptions()]  # the domain's defaults are the proto's
    (d,) = response.detections
    assert (d.label, d.class_id, round(d.confidence, 3)) == ("square", 1, 0.9)
    assert (d.box.left, d.box.top, d.box.right, d.box.bottom) == (1.5, 2.5, 10.0, 20.0)
    assert (response.image_width, response.image_height) == (64, 48)


def test_zero_thresholds_are_honoured_when_set():
    opts = servicer().options_from_proto(
        pb.DetectionOptions(confidence_threshold=0.0, iou_threshold=1.0)
    )
    assert (opts.confidence, opts.iou) == (0.0, 1.0)


def test_class_filter_union_of_names_and_ids():
    opts = servicer().options_from_proto(
        pb.DetectionOptions(class_names=["triangle"], class_ids=[0, 2])
    )
    assert opts.classes == (0, 2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (pb.DetectionOptions(class_names=["dog"]), "class name 'dog' is unknown"),
        (pb.DetectionOptions(class_ids=[3]), "class id 3 is out of range: this model has ids 0..2"),
        (pb.DetectionOptions(confidence_threshold=-0.1), "confidence_threshold"),
        (pb.DetectionOptions(iou_threshold=1.1), "iou_threshold"),
        (pb.DetectionOptions(max_detections=1001), "max_detections"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(InvalidInput, match=message):
        servicer().options_from_proto(options)


def test_model_info_translation_and_loading_state():
    info = asyncio.run(servicer().GetModelInfo(pb.GetModelInfoRequest(), None))
    assert info.backend == pb.BACKEND_ONNXRUNTIME and list(info.class_names) == [
        "circle",
        "square",
        "triangle",
    ]
    assert info.input_size == 320 and info.model_name == "shapes"
    with pytest.raises(Unavailable):
        asyncio.run(servicer(FakeEngine(info=None)).GetModelInfo(pb.GetModelInfoRequest(), None))


def test_weights_that_are_not_there(tmp_path):
    with pytest.raises(WeightsUnavailable, match="no such file"):
        locate_weights(str(tmp_path / "missing.pt"))
    with pytest.raises(WeightsUnavailable, match=r"must be a \.pt or \.onnx"):
        locate_weights("weights.bin")


def test_onnx_weights_cannot_run_on_pytorch(tmp_path):
    weights = tmp_path / "m.onnx"
    weights.write_bytes(b"onnx")
    with pytest.raises(WeightsUnavailable, match="needs .pt weights"):
        prepare(ModelConfig(str(weights), backend="pytorch"))
    assert prepare(ModelConfig(str(weights))).backend == "onnx"
