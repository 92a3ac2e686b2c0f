"""Gateway pieces without servers: option parsing, target parsing, error tables."""

from __future__ import annotations

import json

import grpc
import pytest
from pydantic import ValidationError

from gateway.backends import channel_target, face_options, object_options, service_config
from gateway.errors import http_status_for_task_error, task_error
from gateway.jobs import Status, Task
from gateway.options import (
    FaceOptions,
    FaceVideoOptions,
    ObjectOptions,
    ObjectVideoOptions,
    task_options,
)


def test_object_classes_split_into_names_and_ids():
    opts = task_options(ObjectOptions(classes="person, 2,car,,0"))
    assert opts["class_names"] == ["person", "car"] and opts["class_ids"] == [2, 0]
    proto = object_options(opts)
    assert list(proto.class_names) == ["person", "car"] and list(proto.class_ids) == [2, 0]


def test_video_options_carry_sampling():
    opts = task_options(ObjectVideoOptions(frame_stride="3", max_frames="10"))
    assert (opts["frame_stride"], opts["max_frames"]) == (3, 10)
    assert task_options(FaceVideoOptions(frame_stride=2))["frame_stride"] == 2


@pytest.mark.parametrize(
    ("model", "raw", "field"),
    [
        (FaceOptions, {"upsample": "4"}, "upsample"),
        (FaceOptions, {"detector": "haar"}, "detector"),
        (FaceOptions, {"detection_max_side": "10"}, "detection_max_side"),
        (FaceOptions, {"shoe_size": "9"}, "shoe_size"),
        (ObjectOptions, {"iou_threshold": "0"}, "iou_threshold"),
        (FaceVideoOptions, {"frame_stride": "0"}, "frame_stride"),
    ],
)
def test_bad_options_name_their_field(model, raw, field):
    with pytest.raises(ValidationError) as info:
        model(**raw)
    assert info.value.errors()[0]["loc"] == (field,)


def test_face_options_to_proto():
    proto = face_options(task_options(FaceOptions(detector="cnn", upsample=0, encodings=True)))
    assert (
        proto.detector == 2
        and proto.upsample == 0
        and proto.return_encodings
        and not proto.return_landmarks
    )


def test_channel_targets():
    assert channel_target("10.0.0.1:1,10.0.0.2:2") == "ipv4:10.0.0.1:1,10.0.0.2:2"
    assert channel_target("dns:///face:50051") == "dns:///face:50051"
    assert channel_target("face:50051") == "dns:///face:50051"
    assert channel_target("[::1]:5") == "ipv6:[::1]:5"
    assert channel_target("localhost:7,127.0.0.1:8").startswith("ipv4:127.0.0.1:7")
    with pytest.raises(ValueError, match="host:port"):
        channel_target("face")


def test_service_config_round_robin_health_and_retries():
    config = json.loads(service_config("percept.face.v1.FaceService"))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert config["healthCheckConfig"]["serviceName"] == "percept.face.v1.FaceService"
    assert config["methodConfig"][0]["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


def test_error_tables():
    error = task_error(grpc.StatusCode.INVALID_ARGUMENT, "image is empty")
    assert error == {"code": "invalid_argument", "message": "image is empty"}
    assert http_status_for_task_error(error) == 422
    internal = task_error(grpc.StatusCode.INTERNAL, "Traceback: secret details")
    assert "secret" not in internal["message"] and http_status_for_task_error(internal) == 500
    assert http_status_for_task_error({"code": "attempts_exhausted", "message": "x"}) == 500
    assert http_status_for_task_error(task_error(grpc.StatusCode.UNAVAILABLE, None)) == 503


def test_task_json_shape():
    task = Task(
        "abc", "face_detection", "video", Status.RUNNING, 1_700_000_000.0, 1_700_086_400.0, {"x": 1}
    )
    task.progress_done, task.progress_total = 3, 10
    body = task.to_json("http://h/api/task/abc")
    assert body["status"] == "running" and body["progress"] == {"done": 3, "total": 10}
    assert body["created_at"] == "2023-11-14T22:13:20Z" and body["started_at"] is None
    assert "result" not in body and body["status_url"] == "http://h/api/task/abc"
