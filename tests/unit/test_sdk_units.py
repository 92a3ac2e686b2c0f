"""The SDK's pure parts, with fakes: error mapping, input conversion, options,
types, retries and the REST request loop against httpx's MockTransport."""

from __future__ import annotations

import asyncio
import email.utils
import io
import json
import time

import grpc
import httpx
import numpy as np
import percept
import pytest
from percept import errors, inputs
from percept.cli import ExitCode, exit_code_for
from percept.options import FaceOptions, ObjectOptions, merge, to_form
from percept.retry import Deadline, RetryPolicy
from percept.transport.grpc import channel_target
from percept.types import Kind, Task, TaskStatus
from PIL import Image

# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_idempotency_key", errors.InvalidInput),
        (401, "unauthorized", errors.Unauthorized),
        (403, "forbidden", errors.Forbidden),
        (404, "not_found", errors.NotFound),
        (409, "already_finished", errors.Conflict),
        (410, "expired", errors.Gone),
        (413, "too_large", errors.TooLarge),
        (415, "unsupported_media_type", errors.InvalidInput),
        (422, "invalid_image", errors.InvalidInput),
        (422, "idempotency_key_reused", errors.IdempotencyMismatch),
        (429, "rate_limited", errors.RateLimited),
        (500, "internal", errors.ServerError),
        (503, "unavailable", errors.Unavailable),
        (504, "deadline_exceeded", errors.DeadlineExceeded),
    ],
)
def test_http_errors_map_to_one_type_per_code(status, code, cls):
    body = {"error": {"code": code, "message": "what went wrong", "fields": ["file"]}}
    error = errors.from_http(status, body, {})
    assert type(error) is cls
    assert (error.code, error.status, error.message, error.fields) == (
        code,
        status,
        "what went wrong",
        ("file",),
    )
    assert isinstance(errors.from_http(410, body), errors.NotFound)  # Gone is a NotFound


def test_retry_after_in_seconds_or_as_a_date():
    assert errors.from_http(429, {}, {"retry-after": "7"}).retry_after == 7.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= errors.parse_retry_after(later) <= 31
    assert errors.parse_retry_after("soon") is None
    body = "<html>bad gateway</html>"
    error = errors.from_http(502, body, {"retry-after": "1"})
    assert isinstance(error, errors.Unavailable) and "bad gateway" in error.message


class FakeRpcError(grpc.RpcError):
    def __init__(self, code, details, metadata=()):
        self._code, self._details, self._metadata = code, details, metadata

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._metadata


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidInput),
        (grpc.StatusCode.UNAUTHENTICATED, errors.Unauthorized),
        (grpc.StatusCode.PERMISSION_DENIED, errors.Forbidden),
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.TooLarge),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.INTERNAL, errors.ServerError),
    ],
)
def test_grpc_errors_map_to_the_same_types(code, cls):
    error = errors.from_grpc(FakeRpcError(code, "details", (("x-request-id", "abc"),)))
    assert type(error) is cls
    assert (error.message, error.code, error.request_id) == ("details", code.name.lower(), "abc")


def test_grpc_resource_exhausted_with_retry_after_is_a_rate_limit():
    error = errors.from_grpc(
        FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", (("retry-after", "3"),))
    )
    assert isinstance(error, errors.RateLimited) and error.retry_after == 3.0


def test_cli_exit_codes_follow_the_error_types():
    task = Task("t1", Kind.FACE, "image", TaskStatus.FAILED)
    assert exit_code_for(errors.TaskFailed(task)) == ExitCode.FAILED
    assert exit_code_for(errors.Unavailable("down")) == ExitCode.UNREACHABLE
    assert exit_code_for(errors.InvalidInput("bad")) == ExitCode.USAGE
    assert exit_code_for(errors.Unauthorized("key")) == ExitCode.USAGE
    assert exit_code_for(FileNotFoundError("x")) == ExitCode.USAGE
    assert exit_code_for(errors.ServerError("boom")) == ExitCode.FAILED


# --- inputs ----------------------------------------------------------------------------------


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_numpy_arrays_need_their_channel_order_said(astronaut):
    with pytest.raises(ValueError, match="color='rgb' or color='bgr'"):
        inputs.image_bytes(astronaut)
    rgb = _decode(inputs.image_bytes(astronaut, color="rgb"))
    bgr = _decode(inputs.image_bytes(np.ascontiguousarray(astronaut[:, :, ::-1]), color="bgr"))
    assert np.array_equal(rgb, astronaut) and np.array_equal(bgr, astronaut)  # lossless
    with pytest.raises(ValueError, match="uint8"):
        inputs.image_bytes(astronaut.astype(np.float32), color="rgb")
    with pytest.raises(ValueError, match="not 'gray'"):
        inputs.image_bytes(astronaut, color="gray")
    gray = astronaut[:, :, 0]
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(inputs.image_bytes(gray, color="gray")))), gray
    )


def test_paths_bytes_files_and_pil_images(tmp_path, zidane_bytes, astronaut):
    path = tmp_path / "z.jpg"
    path.write_bytes(zidane_bytes)
    assert inputs.image_bytes(path) == zidane_bytes  # sent as it is
    assert inputs.image_bytes(str(path)) == zidane_bytes
    assert inputs.image_bytes(io.BytesIO(zidane_bytes)) == zidane_bytes
    assert inputs.image_content_type(zidane_bytes) == "image/jpeg"
    assert np.array_equal(_decode(inputs.image_bytes(Image.fromarray(astronaut))), astronaut)
    with pytest.raises(ValueError, match="numpy arrays only"):
        inputs.image_bytes(zidane_bytes, color="rgb")
    with pytest.raises(TypeError, match="an image is a path"):
        inputs.image_bytes(12)


def test_media_is_guessed_from_names_and_bytes(tmp_path, zidane_bytes, astronaut):
    (tmp_path / "clip.avi").write_bytes(b"RIFF....AVI ")
    (tmp_path / "noext").write_bytes(zidane_bytes)
    assert inputs.guess_media(tmp_path / "clip.avi") == "video"
    assert inputs.guess_media(tmp_path / "noext") == "image"
    assert inputs.guess_media(zidane_bytes) == "image"
    assert inputs.guess_media(astronaut) == "image"
    assert inputs.guess_media(percept.VideoURI("rtsp://cam/1")) == "video"


# --- options and types -------------------------------------------------------------------


def test_options_send_only_what_is_set():
    assert to_form(FaceOptions(), "image") == {}
    opts = merge(FaceOptions, FaceOptions(upsample=2), {"landmarks": True})
    assert to_form(opts, "image") == {"upsample": "2", "landmarks": "true"}
    assert ObjectOptions(classes="circle, 3").classes == ("circle", 3)
    assert to_form(ObjectOptions(classes=["star", 1]), "image") == {"classes": "star,1"}
    with pytest.raises(ValueError, match="videos only"):
        to_form(FaceOptions(frame_stride=2), "image")
    assert to_form(FaceOptions(frame_stride=2), "video") == {"frame_stride": "2"}
    with pytest.raises(TypeError, match="unknown FaceOptions field"):
        merge(FaceOptions, None, {"landmark": True})


TASK_JSON = {
    "task_id": "9f1c",
    "kind": "face_detection",
    "media": "video",
    "status": "succeeded",
    "progress": {"done": 2, "total": 2},
    "attempts": 1,
    "options": {"detector": "hog", "upsample": 1},
    "created_at": "2026-01-02T03:04:05.123456Z",
    "started_at": "2026-01-02T03:04:05.5Z",
    "finished_at": "2026-01-02T03:04:06Z",
    "expires_at": "2026-01-03T03:04:05.123456Z",
    "status_url": "http://x/api/task/9f1c",
    "result": {
        "frames": [
            {
                "frame_index": 0,
                "timestamp": 0.0,
                "faces": [{"box": {"left": 1.0, "top": 2.0, "right": 30.5, "bottom": 40.0}}],
                "image_width": 640,
                "image_height": 480,
            },
            {
                "frame_index": 1,
                "timestamp": 0.1,
                "faces": [],
                "image_width": 640,
                "image_height": 480,
            },
        ]
    },
}


def test_task_json_round_trips_into_typed_results():
    task = Task.from_json(TASK_JSON)
    assert task.status is TaskStatus.SUCCEEDED and task.kind is Kind.FACE
    frame = task.result.frames[0]
    assert frame.faces[0].box.width == 29.5 and frame.faces[0].box.center.y == 21.0
    assert task.progress.fraction == 1.0
    expected = dict(TASK_JSON, started_at="2026-01-02T03:04:05.500000Z")
    assert task.to_json() == expected


# --- retries -------------------------------------------------------------------------------


def test_backoff_grows_is_capped_and_honours_retry_after():
    policy = RetryPolicy(attempts=6, initial_backoff=1.0, max_backoff=4.0)
    assert 0.5 <= policy.delay(1) <= 1.0 and 1.0 <= policy.delay(2) <= 2.0
    assert 2.0 <= policy.delay(5) <= 4.0
    assert policy.delay(6) is None  # attempts spent
    assert policy.delay(1, retry_after=9.0) == 9.0
    assert policy.delay(1, retry_after=1000.0) is None  # longer than anyone should wait
    assert policy.retryable(errors.Unavailable("x")) and policy.retryable(errors.RateLimited("x"))
    assert not policy.retryable(errors.InvalidInput("x"))
    assert not policy.retryable(errors.Unavailable("x", task_id="t"))  # a task that failed
    assert policy.retryable(errors.Conflict("x"), conflict=True)


class Recorder:
    """A MockTransport handler that answers from a script and keeps what it got."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _accepted(task_id="t1"):
    return httpx.Response(202, json={"task_id": task_id, "status": "queued", "status_url": "u"})


FAST = RetryPolicy(attempts=4, initial_backoff=0.01, max_backoff=0.02)


def test_submit_retries_with_one_idempotency_key(zidane_bytes):
    recorder = Recorder(
        httpx.ConnectError("refused"),
        httpx.Response(
            503,
            json={"error": {"code": "unavailable", "message": "redis"}},
            headers={"Retry-After": "0"},
        ),  # fmt: skip
        httpx.Response(
            429,
            json={"error": {"code": "rate_limited", "message": "slow"}},
            headers={"Retry-After": "0"},
        ),  # fmt: skip
        _accepted(),
    )
    with percept.Client(
        "http://gw", transport=httpx.MockTransport(recorder), retry=FAST, api_key="k1"
    ) as client:
        task = client.submit("face", zidane_bytes, landmarks=True)
    assert task.task_id == "t1" and task.kind is Kind.FACE and task.media == "image"
    keys = {r.headers["idempotency-key"] for r in recorder.requests}
    assert len(recorder.requests) == 4 and len(keys) == 1
    assert all(r.headers["authorization"] == "Bearer k1" for r in recorder.requests)
    assert recorder.requests[0].url.path == "/api/detect/face/image"
    assert b'name="landmarks"\r\n\r\ntrue' in recorder.requests[-1].content


def test_errors_that_retrying_cannot_fix_are_raised_at_once(zidane_bytes):
    recorder = Recorder(
        httpx.Response(401, json={"error": {"code": "unauthorized", "message": "no key"}})
    )
    with (
        percept.Client("http://gw", transport=httpx.MockTransport(recorder), retry=FAST) as c,
        pytest.raises(percept.Unauthorized, match="no key"),
    ):
        c.submit("face", zidane_bytes)
    assert len(recorder.requests) == 1


def test_a_retry_after_past_the_deadline_is_not_waited_for(zidane_bytes):
    recorder = Recorder(
        httpx.Response(
            429,
            json={"error": {"code": "rate_limited", "message": "slow"}},
            headers={"Retry-After": "30"},
        ),  # fmt: skip
    )
    with percept.Client("http://gw", transport=httpx.MockTransport(recorder), retry=FAST) as c:
        started = time.monotonic()
        with pytest.raises(percept.RateLimited) as info:
            c.submit("face", zidane_bytes, timeout=2)
    assert info.value.retry_after == 30.0 and time.monotonic() - started < 2


def test_conflict_while_the_first_submit_is_created_is_retried(zidane_bytes):
    recorder = Recorder(
        httpx.Response(
            409,
            json={"error": {"code": "in_progress", "message": "creating"}},
            headers={"Retry-After": "0"},
        ),  # fmt: skip
        _accepted("t2"),
    )
    with percept.Client("http://gw", transport=httpx.MockTransport(recorder), retry=FAST) as c:
        assert c.submit("object", zidane_bytes).task_id == "t2"


class ChunkLog(io.FileIO):
    """A real file that records how much each read asks for."""

    sizes: list[int]

    def read(self, size=-1):
        self.sizes.append(size)
        return super().read(size)


def test_a_video_is_streamed_from_disk_not_read_whole(tmp_path):
    path = tmp_path / "big.avi"
    path.write_bytes(b"\0" * (3 * 1024 * 1024))
    recorder = Recorder(_accepted())
    with (
        percept.Client("http://gw", transport=httpx.MockTransport(recorder)) as client,
        ChunkLog(path, "rb") as fh,
    ):
        fh.sizes = []
        task = client.submit("face", fh, media="video", frame_stride=2)
    assert task.media == "video" and recorder.requests[0].url.path == "/api/detect/face/video"
    assert len(recorder.requests[0].content) > 3 * 1024 * 1024
    assert fh.sizes and max(fh.sizes) <= 1024 * 1024 and -1 not in fh.sizes


def test_grpc_targets():
    assert channel_target("10.0.0.1:5,10.0.0.2:5") == "ipv4:10.0.0.1:5,10.0.0.2:5"
    assert channel_target("face:50051") == "dns:///face:50051"
    assert channel_target("dns:///face:50051") == "dns:///face:50051"
    assert channel_target("127.0.0.1:50051") == "127.0.0.1:50051"
    with pytest.raises(ValueError, match="a name"):
        channel_target("a:1,b:2")


def test_deadline():
    assert Deadline(None).remaining() is None and not Deadline(None).expired
    assert Deadline(0).expired and Deadline(10).cap(3) == 3


def test_the_generated_code_and_the_sdk_share_the_percept_name():
    from percept.face.v1 import face_service_pb2

    assert face_service_pb2.DetectFacesRequest.DESCRIPTOR.full_name.startswith("percept.face.v1")
    assert percept.Client.__module__ == "percept.transport.rest"
    assert json.dumps(percept.Task.from_json(TASK_JSON).to_json())


# --- event streams -------------------------------------------------------------------------


def _sse(event_id: str, kind: str, data: dict) -> bytes:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


class Dropping(httpx.SyncByteStream):
    """An event stream that sends its chunks, then (optionally) breaks like a lost connection."""

    def __init__(self, chunks: list[bytes], drop: bool) -> None:
        self.chunks, self.drop = chunks, drop

    def __iter__(self):
        yield from self.chunks
        if self.drop:
            raise httpx.ReadError("connection lost (simulated)")


FRAME = {"frame_index": 0, "timestamp": 0.0, "faces": [], "image_width": 8, "image_height": 8}


def _stream(chunks, drop=False):
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=Dropping(chunks, drop)
    )


def test_a_dropped_event_stream_resumes_after_the_last_event():
    final = dict(TASK_JSON, status="succeeded")
    recorder = Recorder(
        _stream([_sse("1-0", "status", {"status": "running"}), _sse("2-0", "frame", FRAME)], True),
        _stream([_sse("3-0", "status", {"status": "succeeded", "task": final})]),
    )
    with percept.Client("http://gw", transport=httpx.MockTransport(recorder), retry=FAST) as c:
        events = list(c.events("9f1c"))
    assert [e.id for e in events] == ["1-0", "2-0", "3-0"]
    assert "last-event-id" not in recorder.requests[0].headers
    assert recorder.requests[1].headers["last-event-id"] == "2-0"
    assert events[1].frame.frame_index == 0 and events[2].task.succeeded


def test_stopping_a_video_iteration_early_cancels_its_task(tmp_path):
    video = tmp_path / "clip.avi"
    video.write_bytes(b"\0" * 1000)
    recorder = Recorder(
        _accepted("v1"),
        _stream([_sse("1-0", "frame", FRAME), _sse("2-0", "frame", dict(FRAME, frame_index=1))]),
        httpx.Response(200, json=dict(TASK_JSON, task_id="v1", status="cancelled")),
    )
    with percept.Client("http://gw", transport=httpx.MockTransport(recorder)) as c:
        frames = c.detect_faces_in_video(video)
        assert next(frames).frame_index == 0
        frames.close()
    assert [(r.method, r.url.path) for r in recorder.requests] == [
        ("POST", "/api/detect/face/video"),
        ("GET", "/api/task/v1/events"),
        ("DELETE", "/api/task/v1"),
    ]


def test_a_sync_live_stream_iterates_a_frame_source_that_is_also_async_iterable(monkeypatch):
    """GrpcClient.stream_faces reads frames with iter(), even from an object
    that has __aiter__ too (a camera wrapper offering both, a MagicMock):
    every frame is sent and answered in order."""
    from unittest import mock

    from google.protobuf import message_factory
    from percept import rules
    from percept.transport import grpc as transport

    def drain(self, effect, requests):  # a channel's call: reads every request, as grpc does
        answer = message_factory.GetMessageClass(rules.method(effect.path).output_type)
        responses = iter([answer(frame_index=i) for i, _ in enumerate(requests)])
        return mock.Mock(__next__=lambda self: next(responses))

    monkeypatch.setattr(transport._Base, "_call", drain)

    class Camera:
        def __iter__(self):
            yield from (b"\xff\xd8one", b"\xff\xd8two")

        async def __aiter__(self):
            yield b"\xff\xd8one"

    both = mock.MagicMock()
    both.__iter__.return_value = iter([b"\xff\xd8one", b"\xff\xd8two"])
    with percept.GrpcClient("127.0.0.1:1", "127.0.0.1:2") as client:
        for frames in (Camera(), both):
            assert [r.frame_index for r in client.stream_faces(frames)] == [0, 1]


class _BrokenBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """An error answer's body that breaks off after its first bytes; counts closes."""

    closed = 0

    def __iter__(self):
        yield b'{"error": {"code": "unavail'
        raise httpx.ReadError("connection reset")

    async def __aiter__(self):
        yield b'{"error": {"code": "unavail'
        raise httpx.ReadError("connection reset")

    def close(self) -> None:
        type(self).closed += 1

    async def aclose(self) -> None:
        type(self).closed += 1


def test_an_event_stream_whose_error_body_breaks_off_is_closed_each_time():
    """Opening a task's events gets a 503 whose body is cut off: the SDK retries
    as for any network error, gives up with Unavailable, and every response it
    opened is closed (no connection left to the pool's garbage collector)."""
    opened = []

    def gateway(request: httpx.Request) -> httpx.Response:
        opened.append(request.url.path)
        return httpx.Response(503, stream=_BrokenBody())

    _BrokenBody.closed = 0
    transport = httpx.MockTransport(gateway)
    with (
        percept.Client("http://gw", transport=transport, retry=FAST) as c,
        pytest.raises(errors.Unavailable),
    ):
        list(c.events("t1", timeout=5))
    assert len(opened) == FAST.attempts and _BrokenBody.closed == len(opened)

    async def main() -> None:
        transport = httpx.MockTransport(gateway)
        client = percept.AsyncClient("http://gw", transport=transport, retry=FAST)
        async with client as c:
            with pytest.raises(errors.Unavailable):
                [e async for e in c.events("t1", timeout=5)]

    opened.clear()
    _BrokenBody.closed = 0
    asyncio.run(main())
    assert len(opened) == FAST.attempts and _BrokenBody.closed == len(opened)
