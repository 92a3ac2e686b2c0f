"""The object service proven with the project's trained model on generated scenes."""

from __future__ import annotations

import asyncio
import threading

import cv2
import grpc
import numpy as np
import pytest
from percept.common.v1 import image_pb2, video_pb2
from percept.object.v1 import object_service_pb2 as pb
from percept.object.v1 import object_service_pb2_grpc
from ultralytics import YOLO

from harness.shapes import HELD_OUT_SEED, scene_of_reliable_size
from harness.videos import moving_shapes_video, read_frames
from object_service import synthetic
from tests.conftest import encode
from tests.integration.conftest import DEMO_MODEL, FACE_MAX_MESSAGE_BYTES
from tests.support import ServerProcess, rpc_error

pytestmark = pytest.mark.slow


def iou(a, b) -> float:
    """IoU of two (left, top, right, bottom) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def ltrb(box) -> tuple[float, float, float, float]:
    return (box.left, box.top, box.right, box.bottom)


def shape_box(shape) -> tuple[float, float, float, float]:
    return (shape.left, shape.top, shape.right, shape.bottom)


@pytest.fixture(scope="module")
def stub(object_server):
    with grpc.insecure_channel(object_server.address) as channel:
        yield object_service_pb2_grpc.ObjectServiceStub(channel)


def detect(stub, content: bytes, **options) -> pb.DetectObjectsResponse:
    return stub.DetectObjects(
        pb.DetectObjectsRequest(
            image=image_pb2.Image(content=content), options=pb.DetectionOptions(**options)
        ),
        timeout=60,
    )


@pytest.fixture(scope="module")
def scenes():
    rng = np.random.default_rng(HELD_OUT_SEED)
    return [scene_of_reliable_size(rng) for _ in range(12)]


def test_model_info_names_the_trained_classes(stub):
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
    assert list(info.class_names) == list(synthetic.CLASS_NAMES)
    assert info.backend == pb.BACKEND_ONNXRUNTIME and info.device == "cpu"
    assert info.model_name == DEMO_MODEL.stem and info.task == "detect"
    assert info.input_size > 0 and info.weights.endswith(".onnx")


def test_every_object_in_held_out_scenes_is_found(stub, scenes):
    for img, truth in scenes:
        response = detect(stub, encode(img))
        assert (response.image_width, response.image_height) == (640, 480)
        for shape in truth:
            best = max(
                response.detections, key=lambda d: iou(ltrb(d.box), shape_box(shape)), default=None
            )
            assert best is not None and iou(ltrb(best.box), shape_box(shape)) >= 0.5, shape
            assert best.label == shape.name and best.class_id == shape.class_id
        assert [d.confidence for d in response.detections] == sorted(
            (d.confidence for d in response.detections), reverse=True
        )


def test_accuracy_on_held_out_scenes_of_every_size(stub):
    """make_scene's full size range (30-160 px): most objects found and labelled."""
    rng = np.random.default_rng(HELD_OUT_SEED + 1)
    found = total = 0
    for _ in range(30):
        img, truth = synthetic.make_scene(rng)
        detections = detect(stub, encode(img)).detections
        for shape in truth:
            total += 1
            found += any(
                d.class_id == shape.class_id and iou(ltrb(d.box), shape_box(shape)) >= 0.5
                for d in detections
            )
    assert found / total >= 0.85, (found, total)


def test_class_filter_by_name_and_id(stub, scenes):
    img, truth = next((img, t) for img, t in scenes if len({s.class_id for s in t}) >= 2)
    content = encode(img)
    everything = detect(stub, content)
    first, second = sorted({s.class_id for s in truth})[:2]
    by_name = detect(stub, content, class_names=[synthetic.CLASS_NAMES[first]])
    assert by_name.detections and {d.class_id for d in by_name.detections} == {first}
    union = detect(stub, content, class_names=[synthetic.CLASS_NAMES[first]], class_ids=[second])
    assert {d.class_id for d in union.detections} == {first, second}
    assert len(union.detections) == sum(
        d.class_id in (first, second) for d in everything.detections
    )


def test_thresholds_and_max_detections(stub, scenes):
    img, truth = max(scenes, key=lambda s: len(s[1]))
    content = encode(img)
    loose = detect(stub, content, confidence_threshold=0.05)
    strict = detect(stub, content, confidence_threshold=0.9)
    assert len(loose.detections) >= len(truth) >= len(strict.detections)
    assert all(d.confidence >= 0.9 for d in strict.detections)
    assert all(d.confidence >= 0.05 for d in loose.detections)
    top = detect(stub, content, max_detections=1)
    assert len(top.detections) == 1
    assert top.detections[0].confidence == pytest.approx(
        max(d.confidence for d in loose.detections), abs=1e-4
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"confidence_threshold": 1.5}, "confidence_threshold is 1.5: it must be in [0, 1]"),
        ({"iou_threshold": 0.0}, "options.iou_threshold is 0: it must be in (0, 1]"),
        ({"max_detections": 5000}, "max_detections is 5000: it must be in [1, 1000]"),
        (
            {"class_names": ["cat"]},
            "class name 'cat' is unknown: this model's classes are ['circle', 'square'",
        ),
        ({"class_ids": [9]}, "class id 9 is out of range: this model has ids 0..3"),
    ],
)
def test_bad_options_are_invalid_argument_naming_the_range(stub, scenes, options, message):
    err = rpc_error(detect, stub, encode(scenes[0][0]), **options)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.details()


def test_bad_images_and_oversized_messages(stub, scenes, zidane_bytes):
    for content, expected in [
        (b"", "empty"),
        (b"not an image", "not a recognised image"),
        (zidane_bytes[:5000], "truncated"),
    ]:
        err = rpc_error(detect, stub, content)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and expected in err.details()
    err = rpc_error(detect, stub, b"\xff" * (FACE_MAX_MESSAGE_BYTES + 1024))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert detect(stub, encode(scenes[0][0])).detections  # still serving


def _direct(weights: str, image_path, imgsz: int):
    result = YOLO(weights, task="detect").predict(str(image_path), imgsz=imgsz, verbose=False)[0]
    names = result.names
    return [
        (names[int(c)], tuple(box))
        for box, c in zip(result.boxes.xyxy.tolist(), result.boxes.cls.tolist(), strict=True)
    ]


def _assert_same(response, direct) -> None:
    assert len(response.detections) == len(direct)
    for detection, (label, box) in zip(response.detections, direct, strict=True):
        assert detection.label == label
        assert np.allclose(ltrb(detection.box), box, atol=1.0), (ltrb(detection.box), box)


def test_grpc_equals_direct_ultralytics_predict_for_both_backends(
    stub, object_server_pytorch, scenes, tmp_path, onnx_cache
):
    onnx_info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
    with grpc.insecure_channel(object_server_pytorch.address) as channel:
        pt_stub = object_service_pb2_grpc.ObjectServiceStub(channel)
        pt_info = pt_stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        # the weights file by name only: a server's paths are not disclosed
        assert pt_info.backend == pb.BACKEND_PYTORCH and pt_info.weights == DEMO_MODEL.name
        for i, (img, _) in enumerate(scenes[:4]):
            path = tmp_path / f"scene{i}.png"
            cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            content = path.read_bytes()
            _assert_same(
                detect(stub, content),
                _direct(str(onnx_cache / onnx_info.weights), path, onnx_info.input_size),
            )
            _assert_same(
                detect(pt_stub, content), _direct(str(DEMO_MODEL), path, pt_info.input_size)
            )


# --- videos and live streams -------------------------------------------------


@pytest.fixture(scope="module")
def shapes_video(video_dir):
    path = video_dir / "moving_shapes.avi"
    truth = moving_shapes_video(path, n_frames=20)
    return path, truth


def test_video_boxes_follow_the_known_paths(stub, shapes_video):
    path, truth = shapes_video
    responses = list(
        stub.DetectObjectsInVideo(
            pb.DetectObjectsInVideoRequest(video=video_pb2.VideoSource(content=path.read_bytes())),
            timeout=120,
        )
    )
    assert [r.frame_index for r in responses] == list(range(len(truth)))
    assert all(r.expected_frames == len(truth) for r in responses)
    assert responses[2].timestamp == pytest.approx(0.2, abs=1e-3)
    for response, shapes in zip(responses, truth, strict=True):
        for shape in shapes:
            matched = [d for d in response.detections if iou(ltrb(d.box), shape_box(shape)) >= 0.5]
            assert matched and matched[0].label == shape.name, (response.frame_index, shape)


def test_video_stride_and_max_frames_by_uri(stub, shapes_video):
    path, truth = shapes_video
    responses = list(
        stub.DetectObjectsInVideo(
            pb.DetectObjectsInVideoRequest(
                video=video_pb2.VideoSource(uri=str(path)),
                frame_stride=3,
                max_frames=4,
                options=pb.DetectionOptions(class_names=["circle"]),
            ),
            timeout=120,
        )
    )
    assert [r.frame_index for r in responses] == [0, 3, 6, 9]
    for response in responses:
        circle = truth[response.frame_index][0]
        assert [d.label for d in response.detections] == ["circle"]
        assert iou(ltrb(response.detections[0].box), shape_box(circle)) >= 0.5


def test_video_errors(stub, video_dir):
    err = rpc_error(
        stub.DetectObjectsInVideo,
        pb.DetectObjectsInVideoRequest(video=video_pb2.VideoSource(content=b"\x00\x01" * 500)),
        timeout=30,
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "could not be opened" in err.details()
    err = rpc_error(
        stub.DetectObjectsInVideo,
        pb.DetectObjectsInVideoRequest(video=video_pb2.VideoSource(uri="/etc/passwd")),
        timeout=30,
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def test_video_streams_early_and_cancel_stops_work(object_server, stub, video_dir):
    path = video_dir / "long_shapes.avi"
    n_frames = 150
    moving_shapes_video(path, n_frames=n_frames, fps=25)
    metric = "percept_frames_processed_total"
    before = object_server.metric(metric, method="DetectObjectsInVideo")
    call = stub.DetectObjectsInVideo(
        pb.DetectObjectsInVideoRequest(video=video_pb2.VideoSource(uri=str(path))), timeout=300
    )
    first = next(call)
    assert first.frame_index == 0
    assert object_server.metric(metric, method="DetectObjectsInVideo") - before < n_frames / 2
    call.cancel()
    settled = None
    for _ in range(20):
        threading.Event().wait(0.3)
        now = object_server.metric(metric, method="DetectObjectsInVideo") - before
        if now == settled:
            break
        settled = now
    # window 4 batches x 2 frames, plus one batch being decoded
    assert settled <= 1 + 4 * 2 + 2 * 2, settled


def test_stream_objects_answers_in_order_while_sending(object_server, shapes_video):
    path, truth = shapes_video
    frames = read_frames(path)[:6]

    async def lockstep():
        async with grpc.aio.insecure_channel(object_server.address) as channel:
            call = object_service_pb2_grpc.ObjectServiceStub(channel).StreamObjects(timeout=120)
            got = []
            for frame in frames:
                await call.write(
                    pb.StreamObjectsRequest(image=image_pb2.Image(content=encode(frame, ".jpg")))
                )
                got.append(await asyncio.wait_for(call.read(), 60))
            await call.done_writing()
            return got

    responses = asyncio.run(lockstep())
    assert [r.frame_index for r in responses] == list(range(len(frames)))
    for response, shapes in zip(responses, truth, strict=False):
        for shape in shapes:
            assert any(
                d.label == shape.name and iou(ltrb(d.box), shape_box(shape)) >= 0.5
                for d in response.detections
            ), (response.frame_index, shape)


def test_reflection_and_health(object_server):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(object_server.address) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert "percept.object.v1.ObjectService" in services and "grpc.health.v1.Health" in services


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("/nonexistent/weights.pt", "no such file"),
        ("yolo11n.pt", "could not be downloaded"),
        ("weights.txt", "must be a .pt or .onnx file"),
    ],
)
def test_missing_weights_refuse_to_start_with_a_clear_message(model, message):
    server = ServerProcess("object_service", env={"OBJECT_MODEL": model, "OBJECT_WORKERS": "1"})
    with pytest.raises(RuntimeError) as info:
        server.start(timeout=120)
    assert message in str(info.value) and "OBJECT_MODEL" in str(info.value)
    assert server.proc.returncode != 0
