"""Gateway pieces without servers: option parsing, target parsing, error tables."""

from __future__ import annotations

import json

import grpc
import pytest

from gateway import protoform
from gateway.backends import channel_target, service_config
from gateway.errors import ApiError, http_status_for_task_error, task_error
from gateway.jobs import Status, Task
from gateway.kinds import KINDS

BY_ID = {k.id: k for k in KINDS}
FACE_IMAGE = BY_ID["face_detection:image"]
FACE_VIDEO = BY_ID["face_detection:video"]
OBJECT_IMAGE = BY_ID["object_detection:image"]
OBJECT_VIDEO = BY_ID["object_detection:video"]


def test_every_kind_maps_its_route_to_its_rpc():
    assert {k.path: k.rpc_path for k in KINDS} == {
        "/api/detect/face/image": "/percept.face.v1.FaceService/DetectFaces",
        "/api/detect/face/video": "/percept.face.v1.FaceService/DetectFacesInVideo",
        "/api/identify/face/image": "/percept.face.v1.FaceService/IdentifyFaces",
        "/api/identify/face/video": "/percept.face.v1.FaceService/DetectFacesInVideo",
        "/api/detect/object/image": "/percept.object.v1.ObjectService/DetectObjects",
        "/api/detect/object/video": "/percept.object.v1.ObjectService/DetectObjectsInVideo",
    }
    assert [k.streaming for k in KINDS] == [False, True, False, True, False, True]
    assert {k.input_field for k in KINDS} == {"image", "video"}


def test_identification_kinds_need_a_collection_and_detection_kinds_take_none():
    identify_image = BY_ID["face_identification:image"]
    identify_video = BY_ID["face_identification:video"]
    for kind in (identify_image, identify_video):
        with pytest.raises(ApiError) as info:
            kind.build(b"data", {"top_k": "3"})
        assert info.value.status == 422 and info.value.fields == ["collection_id"]
        assert "collection_id is required" in info.value.message
    request = identify_video.build(b"v", {"collection_id": "staff", "threshold": "0.5"})
    assert request.collection_id == "staff" and request.threshold == pytest.approx(0.5)
    assert not request.HasField("options") or request.options.upsample == 0
    assert identify_video.options(request) == {"collection_id": "staff", "threshold": 0.5}
    # Detection kinds do not identify: the fields are unknown options there.
    with pytest.raises(ApiError) as info:
        FACE_VIDEO.build(b"v", {"collection_id": "staff"})
    assert info.value.status == 422 and "unknown option" in info.value.message
    with pytest.raises(ApiError) as info:
        identify_image.build(b"i", {"collection_id": "staff", "threshold": "5"})
    assert "threshold is 5: it must be in (0, 4]" in info.value.message


def test_rest_options_parse_into_the_proto_request():
    request = FACE_IMAGE.build(b"img", {"detector": "cnn", "upsample": "0", "encodings": "true"})
    assert request.image.content == b"img"
    assert request.options.detector == 2 and request.options.upsample == 0
    assert request.options.HasField("upsample")  # 0 was given: it is set, not defaulted
    assert request.options.return_encodings and not request.options.return_landmarks
    assert FACE_IMAGE.options(request) == {
        "detector": "cnn",
        "upsample": 0,
        "return_encodings": True,
    }


def test_unset_options_stay_unset_so_the_service_default_applies():
    request = OBJECT_IMAGE.build(b"img", {})
    assert not request.options.HasField("confidence_threshold")
    assert not request.options.HasField("iou_threshold")
    assert request.options.max_detections == 0
    assert OBJECT_IMAGE.options(request) == {}


def test_object_classes_split_into_names_and_ids():
    request = OBJECT_IMAGE.build(b"img", {"classes": "person, 2,car,,0"})
    assert list(request.options.class_names) == ["person", "car"]
    assert list(request.options.class_ids) == [2, 0]
    opts = OBJECT_IMAGE.options(request)
    assert opts["class_names"] == ["person", "car"] and opts["class_ids"] == [2, 0]


def test_zero_leaves_unset_where_the_proto_says_0_means_the_default():
    request = FACE_VIDEO.build(b"v", {"frame_stride": "0", "max_frames": "0", "num_jitters": "0"})
    assert (request.frame_stride, request.max_frames) == (0, 0)
    assert FACE_VIDEO.options(request) == {}  # nothing set: the service's defaults apply
    assert OBJECT_IMAGE.options(OBJECT_IMAGE.build(b"i", {"max_detections": "0"})) == {}
    # where 0 is a real value (upsample 0: no upsampling) it stays set
    assert FACE_IMAGE.build(b"i", {"upsample": "0"}).options.HasField("upsample")


def test_one_option_under_two_names_is_refused():
    with pytest.raises(ApiError) as info:
        FACE_IMAGE.build(b"i", {"return_landmarks": "true", "landmarks": "false"})
    assert info.value.status == 422 and set(info.value.fields) == {"return_landmarks", "landmarks"}
    assert "same option" in info.value.message


def test_video_options_carry_sampling():
    request = OBJECT_VIDEO.build(b"vid", {"frame_stride": "3", "max_frames": "10"})
    assert (request.frame_stride, request.max_frames) == (3, 10)
    assert request.video.content == b"vid"


@pytest.mark.parametrize(
    ("kind", "raw", "field", "says"),
    [
        (FACE_IMAGE, {"upsample": "4"}, "upsample", "[0, 3]"),
        (FACE_IMAGE, {"detector": "haar"}, "detector", "hog, cnn"),
        (FACE_IMAGE, {"detection_max_side": "10"}, "detection_max_side", "[32, 16384]"),
        (FACE_IMAGE, {"shoe_size": "9"}, "shoe_size", "accepts"),
        (FACE_IMAGE, {"landmarks": "maybe"}, "landmarks", "true or false"),
        (OBJECT_IMAGE, {"iou_threshold": "0"}, "iou_threshold", "(0, 1]"),
        (OBJECT_IMAGE, {"confidence_threshold": "nan"}, "confidence_threshold", "finite"),
        (FACE_VIDEO, {"frame_stride": "100001"}, "frame_stride", "[1, 100000]"),
        (FACE_VIDEO, {"max_frames": "-1"}, "max_frames", "an integer in [1, 1000000]"),
        (FACE_IMAGE, {"upsample": "-1"}, "upsample", "an integer in [0, 3]"),  # its own range
    ],
)
def test_bad_options_name_their_field_and_what_is_accepted(kind, raw, field, says):
    with pytest.raises(ApiError) as info:
        kind.build(b"x", raw)
    assert info.value.status == 422 and info.value.fields == [field]
    assert says in info.value.message


def test_openapi_schema_comes_from_the_proto():
    schema = protoform.openapi_schema(FACE_IMAGE.params["upsample"])
    assert schema["minimum"] == 0 and schema["maximum"] == 3 and schema["default"] == 1
    assert "upsample" in schema["description"].lower()
    iou = protoform.openapi_schema(OBJECT_IMAGE.params["iou_threshold"])
    assert iou["exclusiveMinimum"] == 0 and iou["maximum"] == 1
    assert protoform.openapi_schema(FACE_IMAGE.params["detector"])["enum"] == ["hog", "cnn"]


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
    assert http_status_for_task_error({"code": "attempts_exhausted", "message": "x"}) == 503
    assert http_status_for_task_error({"code": "no_such_code", "message": "x"}) == 500
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


@pytest.mark.parametrize(
    "status, done",
    [(Status.QUEUED, 0), (Status.RUNNING, 0), (Status.SUCCEEDED, 1), (Status.FAILED, 0),
     (Status.CANCELLED, 0)],
)  # fmt: skip
def test_an_image_task_is_one_item_done_once_it_succeeded(status, done):
    task = Task("abc", "object_detection", "image", status, 1_700_000_000.0, 1_700_086_400.0)
    assert task.to_json()["progress"] == {"done": done, "total": 1}


def test_run_time_percentiles_from_the_minute_buckets():
    from gateway.stats import BOUNDS_MS, quantile, summarize

    counts = [0] * (len(BOUNDS_MS) + 1)
    counts[BOUNDS_MS.index(100)] = 10  # ten runs in (50, 100] ms
    assert quantile(counts, 0.5) == 75.0 and quantile(counts, 1.0) == 100.0
    assert quantile([0] * len(counts), 0.5) is None
    # Capped at the longest run seen: ten runs of 61-63 s are not "4 minutes" at p95.
    wide = [0] * (len(BOUNDS_MS) + 1)
    wide[BOUNDS_MS.index(300000)] = 10
    assert quantile(wide, 0.95) > 280000 and quantile(wide, 0.95, 63000.0) == 63000.0
    minute = {"minute": 0, "succeeded": "10", "r14": "10", "run_max": "63000"}
    assert summarize([minute, {"minute": 60}])["run_p95_ms"] == 63000.0
    rows = [{"minute": 0, "succeeded": "3", "failed": "1", "r6": "4"}, {"minute": 60}]
    summary = summarize(rows)
    assert summary["ended"] == 4 and summary["per_minute"] == 2.0
    assert summary["failure_rate"] == 0.25 and 100 < summary["run_p50_ms"] <= 250


def test_a_full_or_unreachable_store_is_503_with_retry_after():
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError

    from gateway.errors import response_for

    full = response_for(ResponseError("OOM command not allowed when used memory > 'maxmemory'."))
    assert full.status_code == 503 and full.headers["retry-after"] == "10"
    assert json.loads(full.body)["error"]["code"] == "store_full"
    down = response_for(RedisConnectionError("Connection refused"))
    assert down.status_code == 503 and down.headers["retry-after"]
    hidden = response_for(KeyError("/home/app/secret.py"))
    assert hidden.status_code == 500 and b"secret" not in hidden.body
