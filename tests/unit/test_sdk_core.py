"""The SDK's one core: option rules read from the protos, kinds the gateway
declares beyond the built-in ones, and the sans-IO drivers, against httpx's
MockTransport (no server)."""

from __future__ import annotations

import asyncio
import json

import httpx
import percept
import pytest
from percept.rules import option_rules, rules_from_schema
from percept.transport import _core
from percept.transport._wire import to_json
from percept.types import GenericResult

POSE = {
    "kind": "pose_estimation",
    "media": "image",
    "path": "/api/detect/pose/image",
    "summary": "Find people's keypoints",
    "backend": "pose",
    "rpc": "toy.pose.v1.PoseService/DetectPoses",
    "options": {"min_score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}},
    "private": False,
}
RESULT = {
    "image_width": 64,
    "image_height": 48,
    "items": [
        {
            "box": {"left": 1, "top": 2, "right": 30, "bottom": 40},
            "label": "person",
            "score": 0.9,
            "keypoints": [{"name": "nose", "x": 10.0, "y": 12.0, "score": 0.8}, {"x": 1, "y": 2}],
            "mask": [[1, 2], [3, 4], [5, 6]],
            "track_id": 7,
        }
    ],
}


class Gateway:
    """A MockTransport handler for a gateway that serves one extra kind."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if request.url.path == "/api/kinds":
            return httpx.Response(200, json={"kinds": [POSE]})
        if request.method == "POST":
            return httpx.Response(202, json={"task_id": "p1", "status": "queued"})
        task = {"task_id": "p1", "kind": "pose_estimation", "media": "image",
                "status": "succeeded", "result": RESULT}  # fmt: skip
        if request.url.path.endswith("/events"):
            event = json.dumps({"status": "succeeded", "task": task})
            body = f"id: 1-0\nevent: status\ndata: {event}\n\n".encode()
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        return httpx.Response(200, json=task)


def test_option_ranges_come_from_the_proto():
    iou = option_rules("object", "image")["iou_threshold"]
    assert (iou.minimum, iou.exclusive_minimum, iou.maximum, iou.default) == (0, True, 1, 0.7)
    assert not iou.accepts(0) and iou.accepts(1) and iou.accepts(0.01)
    assert option_rules("face", "image")["detector"].choices == ("hog", "cnn")
    assert "frame_stride" in option_rules("face", "video")
    assert "frame_stride" not in option_rules("face", "image")
    side = option_rules("face", "image")["detection_max_side"]
    assert side.accepts(0) and not side.accepts(31)  # 0: the default, full size
    schema = rules_from_schema(POSE["options"])["min_score"]
    assert schema.exclusive_minimum and not schema.accepts(0) and schema.accepts(1)


def test_the_sdk_refuses_an_option_out_of_range_before_sending_it(zidane_bytes):
    gateway = Gateway()
    with (
        percept.Client("http://gw", transport=httpx.MockTransport(gateway)) as client,
        pytest.raises(percept.InvalidInput, match=r"iou_threshold is 0: it must be in \(0, 1\]"),
    ):
        client.submit("object", zidane_bytes, iou_threshold=0)
    assert gateway.requests == []


def test_a_kind_the_gateway_declares_is_submitted_to_its_route(zidane_bytes):
    gateway = Gateway()
    with percept.Client("http://gw", transport=httpx.MockTransport(gateway)) as client:
        task = client.submit("pose_estimation", zidane_bytes, min_score=0.5)
        assert task.kind == "pose_estimation" and task.media == "image"
        again = client.submit("pose_estimation", zidane_bytes)
        with pytest.raises(percept.InvalidInput, match="min_score"):
            client.submit("pose_estimation", zidane_bytes, min_score=0)
        done = client.wait(again)
        assert [k.kind for k in client.kinds()] == ["pose_estimation"]
    paths = [(r.method, r.url.path) for r in gateway.requests]
    assert paths.count(("GET", "/api/kinds")) == 1  # fetched once per client
    assert paths.count(("POST", "/api/detect/pose/image")) == 2
    assert b'name="min_score"\r\n\r\n0.5' in gateway.requests[1].content
    result = done.result
    assert isinstance(result, GenericResult) and result.raw == RESULT
    item = result.items[0]
    assert item.label == "person" and item.box.width == 29 and item.track_id == 7
    assert item.keypoints[0] == percept.Keypoint(10.0, 12.0, "nose", 0.8)
    assert item.keypoints[1].name is None and item.mask[2] == (5, 6)
    assert done.to_json()["result"] == RESULT


def test_the_async_client_takes_the_same_kinds(zidane_bytes):
    async def main():
        async with percept.AsyncClient(
            "http://gw", transport=httpx.MockTransport(Gateway())
        ) as client:
            task = await client.submit("pose_estimation", zidane_bytes)
            return await client.wait(task)

    assert asyncio.run(main()).result.items[0].score == 0.9


def test_grpc_responses_read_as_the_rest_json():
    from percept.face.v1 import face_service_pb2 as face_pb

    response = face_pb.DetectFacesResponse(image_width=8, image_height=6)
    face = response.faces.add()
    face.box.right = 3
    face.landmarks.chin.add(x=1, y=2)
    data = to_json(response)
    assert data["faces"][0]["landmarks"]["chin"] == [[1.0, 2.0]]
    result = percept.ImageResult.from_json(data, percept.Kind.FACE)
    assert result.faces[0].track_id is None and result.faces[0].matches is None


def test_an_abandoned_operation_runs_its_undo_once():
    undone = []

    def undo():
        undone.append(True)
        return None
        yield

    @_core.stream
    def numbers():
        yield _core.Defer(undo)
        for n in range(3):
            yield _core.Item(n)

    class NoIO:
        def perform(self, effect):
            raise AssertionError(effect)

    steps = _core.iterate(numbers(), NoIO())
    assert next(steps) == 0
    steps.close()
    assert undone == [True]
    assert list(_core.iterate(numbers(), NoIO())) == [0, 1, 2] and undone == [True]


@pytest.mark.parametrize(
    ("sync", "asynchronous"),
    [(percept.Client, percept.AsyncClient), (percept.GrpcClient, percept.AsyncGrpcClient)],
)
def test_each_operation_is_one_method_of_both_clients(sync, asynchronous):
    import inspect

    public = lambda cls: {n for n in dir(cls) if not n.startswith("_")}  # noqa: E731
    assert public(sync) - {"close"} == public(asynchronous) - {"aclose"}
    own = {"close", "perform", "as_completed", "wait_all"}  # each I/O's: threads or tasks
    for name in public(sync) - own:
        mine, theirs = getattr(sync, name), getattr(asynchronous, name)
        assert inspect.signature(mine) == inspect.signature(theirs), name
        assert mine.__doc__ == theirs.__doc__, name
