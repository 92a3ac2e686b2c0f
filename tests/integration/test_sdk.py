"""The Python SDK against the real stack: gateway + Redis + face/object servers.

Both transports, sync and asyncio; results equal what the REST API and the
gRPC services answer; a retried submit makes one task; a killed replica is
retried around; a broken video stream resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading

import cv2
import httpx
import numpy as np
import percept
import pytest
from percept import Kind, TaskStatus
from percept.types import FrameEvent, ProgressEvent, StatusEvent

from harness.faces import FACE_PATCH
from harness.videos import moving_patch_video, moving_shapes_video
from object_service import synthetic
from tests.conftest import corrupt_png, encode
from tests.support import ServerProcess, free_port

pytestmark = pytest.mark.slow

FRAMES = 12


@pytest.fixture(scope="module")
def client(gateway):
    with percept.Client(gateway.url, api_key=gateway.api_key, wait_timeout=300) as c:
        yield c


@pytest.fixture(scope="module")
def grpc_client(face_server, object_server):
    with percept.GrpcClient(face=face_server.address, object=object_server.address) as c:
        yield c


@pytest.fixture(scope="module")
def http(gateway):
    with gateway.client(timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("sdk") / "face.avi"
    moving_patch_video(path, np.ascontiguousarray(astronaut[FACE_PATCH]), n_frames=FRAMES)
    return path


@pytest.fixture(scope="module")
def shapes_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("sdk") / "shapes.avi"
    moving_shapes_video(path, n_frames=8)
    return path


@pytest.fixture(scope="module")
def scene():
    image, truth = synthetic.make_scene(np.random.default_rng(99))
    return image, truth  # RGB


def boxes(items):
    return [i.box.as_tuple() for i in items]


def task_ids(http) -> set[str]:
    return {t["task_id"] for t in http.get("/api/tasks", params={"limit": 500}).json()["tasks"]}


# --- REST, sync --------------------------------------------------------------------------------


def test_rest_faces_equal_the_api_and_grpc(client, grpc_client, http, assets):
    path = assets / "zidane.jpg"
    result = client.detect_faces(path, landmarks=True, encodings=True)
    direct = grpc_client.detect_faces(path, landmarks=True, encodings=True)
    assert result == direct  # one set of types, the same values through both transports
    assert len(result.faces) == 1 and (result.image_width, result.image_height) == (1280, 720)
    face = result.faces[0]
    assert len(face.landmarks.chin) == 17 and len(face.encoding) == 128
    # The typed task is the API's JSON, field for field.
    task = client.submit("face", path, landmarks=True, encodings=True)
    assert task.status is TaskStatus.QUEUED and task.kind is Kind.FACE
    done = client.wait(task)
    assert done.succeeded and done.result == result
    assert done.to_json() == http.get(f"/api/task/{task.task_id}").json()


def test_rest_objects_from_a_bgr_array(client, grpc_client, scene):
    rgb, truth = scene
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    with pytest.raises(ValueError, match="color="):
        client.detect_objects(bgr)
    result = client.detect_objects(bgr, color="bgr")
    assert result == grpc_client.detect_objects(rgb, color="rgb")
    assert {d.label for d in result.detections} >= {s.name for s in truth}
    only = client.detect_objects(encode(rgb), classes=[truth[0].name])
    assert {d.label for d in only.detections} == {truth[0].name}


def test_rest_video_frames_arrive_in_order_and_equal_grpc(client, grpc_client, face_video):
    frames = list(client.detect_faces_in_video(face_video))
    assert [f.frame_index for f in frames] == list(range(FRAMES))
    direct = list(grpc_client.detect_faces_in_video(face_video))
    assert [boxes(f.faces) for f in frames] == [boxes(f.faces) for f in direct]
    assert sum(1 for f in frames if f.faces) >= FRAMES - 1
    assert direct[0].expected_frames == FRAMES and direct[-1].timestamp > 0
    # Events: every frame, progress up to the total, the ended status with the task.
    task = client.submit("face", face_video, frame_stride=2)
    events = list(client.events(task))
    assert [e.frame.frame_index for e in events if isinstance(e, FrameEvent)] == list(
        range(0, FRAMES, 2)
    )
    last_progress = [e for e in events if isinstance(e, ProgressEvent)][-1].progress
    assert (last_progress.done, last_progress.total) == (FRAMES // 2, FRAMES // 2)
    assert isinstance(events[-1], StatusEvent) and events[-1].task.succeeded
    assert len(events[-1].task.result.frames) == FRAMES // 2
    # A late reader, resuming after an event id, gets only what came after it.
    middle = events[len(events) // 2]
    resumed = list(client.events(task, after=middle.id))
    assert [e.id for e in resumed] == [e.id for e in events[len(events) // 2 + 1 :]]


def test_rest_objects_in_video(client, grpc_client, shapes_video):
    frames = list(client.detect_objects_in_video(shapes_video, max_frames=5))
    direct = list(grpc_client.detect_objects_in_video(shapes_video, max_frames=5))
    assert [f.frame_index for f in frames] == [0, 1, 2, 3, 4]
    assert [[d.label for d in f.detections] for f in frames] == [
        [d.label for d in f.detections] for f in direct
    ]
    assert all({"circle", "square"} <= {d.label for d in f.detections} for f in frames)


def test_rest_cancel_list_and_wait_for_many(client, face_video, zidane_bytes, assets):
    long_task = client.submit("face", face_video, encodings=True, num_jitters=20)
    cancelled = client.cancel(long_task)
    assert cancelled.status is TaskStatus.CANCELLED
    assert client.cancel(long_task).status is TaskStatus.CANCELLED  # again: still cancelled
    assert client.wait(long_task).status is TaskStatus.CANCELLED
    with pytest.raises(percept.TaskCancelled):
        list(client.iter_frames(long_task))
    listed = client.tasks(status="cancelled", kind="face")
    assert long_task.task_id in [t.task_id for t in listed.tasks]
    assert all(t.status is TaskStatus.CANCELLED for t in listed.tasks)

    sources = [zidane_bytes, assets / "bus.jpg"] * 3
    tasks = [client.submit("face", s) for s in sources]
    finished = client.wait_all(tasks)
    assert [t.task_id for t in finished] == [t.task_id for t in tasks]
    assert all(t.succeeded for t in finished)
    assert len({t.task_id for t in client.as_completed(tasks)}) == len(tasks)
    with pytest.raises(percept.Conflict, match="already ended"):
        client.cancel(tasks[0])
    newest = list(client.iter_tasks(page_size=2))
    assert {t.task_id for t in tasks} <= {t.task_id for t in newest}


def test_rest_errors_are_typed(client, zidane_bytes, astronaut, tmp_path):
    with pytest.raises(percept.InvalidInput) as info:
        client.submit("face", b"not an image at all", media="image")
    assert info.value.code == "invalid_image" and info.value.fields == ("file",)
    with pytest.raises(percept.InvalidInput) as info:
        client.submit("object", zidane_bytes, confidence_threshold=3)
    assert info.value.code == "invalid_option" and "confidence_threshold" in info.value.fields
    with pytest.raises(percept.NotFound):
        client.task("0" * 32)
    with pytest.raises(percept.InvalidInput, match="truncated") as info:  # the gateway can tell
        client.detect_faces(zidane_bytes[: len(zidane_bytes) // 3])
    assert info.value.code == "invalid_image"
    with pytest.raises(percept.TaskFailed) as failed:  # only the model's decoder can tell
        client.detect_faces(corrupt_png(astronaut))
    task = failed.value.task
    assert task.status is TaskStatus.FAILED and task.error.code == "invalid_argument"
    assert "corrupt" in task.error.message and failed.value.code == "invalid_argument"


class DropFirstResponse(httpx.BaseTransport):
    """Lets the first POST reach the server, then loses its answer: the client sees a
    network error after the server has made the task."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.posts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST":
            self.posts += 1
            if self.posts == 1:
                response.read()
                response.close()
                raise httpx.ReadError("connection reset (simulated)", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_retried_submit_makes_one_task(gateway, http, zidane_bytes):
    before = task_ids(http)
    transport = DropFirstResponse()
    with percept.Client(gateway.url, api_key=gateway.api_key, transport=transport) as c:
        task = c.submit("face", zidane_bytes)
        assert transport.posts == 2  # the submit was sent twice...
        assert c.wait(task).succeeded
    assert task_ids(http) - before == {task.task_id}  # ...and made one task


def test_an_unreachable_gateway_raises_unavailable():
    quick = percept.RetryPolicy(attempts=3, initial_backoff=0.05)
    with percept.Client(f"http://127.0.0.1:{free_port()}", retry=quick) as c:
        with pytest.raises(percept.Unavailable, match="cannot reach"):
            c.task("x")
        with pytest.raises(percept.Unavailable):
            c.health()


def test_health(client, grpc_client):
    assert client.health() == percept.Health(
        True, True, {"redis": True, "queues": True, "face": True, "object": True}
    )
    assert grpc_client.health() == percept.Health(True, True, {"face": True, "object": True})


# --- REST, asyncio -----------------------------------------------------------------------------


def test_async_rest_client(gateway, grpc_client, assets, face_video, zidane_bytes):
    async def main():
        async with percept.AsyncClient(gateway.url, api_key=gateway.api_key) as c:
            image = await c.detect_faces(assets / "zidane.jpg")
            frames = [f async for f in c.detect_faces_in_video(face_video, max_frames=4)]
            tasks = await asyncio.gather(
                *(c.submit("object", assets / "bus.jpg") for _ in range(3))
            )
            finished = await c.wait_all(tasks)
            events = [e async for e in c.events(tasks[0])]
            listed = await c.tasks(limit=5)
            cancelled_task = await c.submit("face", face_video, num_jitters=20, encodings=True)
            cancelled = await c.cancel(cancelled_task)
            health = await c.health()
            with pytest.raises(percept.NotFound):
                await c.task("f" * 32)
            return image, frames, finished, events, listed, cancelled, health

    image, frames, finished, events, listed, cancelled, health = asyncio.run(main())
    assert image == grpc_client.detect_faces(zidane_bytes)
    assert [f.frame_index for f in frames] == [0, 1, 2, 3] and all(f.faces for f in frames)
    assert all(t.succeeded and t.kind is Kind.OBJECT for t in finished)
    assert isinstance(events[-1], StatusEvent) and events[-1].task.task_id == finished[0].task_id
    assert events[-1].task.result == finished[0].result
    assert finished[-1].task_id in {t.task_id for t in listed.tasks}
    assert cancelled.status is TaskStatus.CANCELLED and health.ready


# --- gRPC --------------------------------------------------------------------------------------


def test_grpc_compare_and_model_info(grpc_client, astronaut, zidane_bytes):
    head = np.ascontiguousarray(astronaut[FACE_PATCH])
    same = grpc_client.compare_faces(head, head, color="rgb")
    assert len(same.matches) == 1 and same.matches[0].match and same.matches[0].distance < 0.1
    other = grpc_client.compare_faces(zidane_bytes, encodings=[same.probe_faces[0].encoding])
    assert not other.matches[0].match and other.tolerance == pytest.approx(0.6)
    info = grpc_client.model_info()
    assert info.class_names == ("circle", "square", "triangle", "star")
    assert info.backend == "onnxruntime" and info.task == "detect"
    with pytest.raises(percept.InvalidInput, match="class"):
        grpc_client.detect_objects(zidane_bytes, classes=["unicorn"])


def test_grpc_live_frames_equal_the_video_stream(grpc_client, face_video, shapes_video):
    from harness.videos import read_frames

    rgb_frames = read_frames(face_video)
    video = list(grpc_client.detect_faces_in_video(face_video))
    sent = []

    def camera():
        for frame in rgb_frames:
            sent.append(frame)
            yield cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)  # as a camera read by OpenCV

    live = list(grpc_client.stream_faces(camera(), color="bgr"))
    assert [f.frame_index for f in live] == list(range(FRAMES)) and len(sent) == FRAMES
    assert all(f.timestamp is None for f in live)
    assert [boxes(f.faces) for f in live] == [boxes(f.faces) for f in video]
    objects = list(grpc_client.stream_objects(read_frames(shapes_video)[:3], color="rgb"))
    assert [len(f.detections) >= 2 for f in objects] == [True] * 3
    with pytest.raises(ValueError, match="color="):  # the caller's mistake, not a gRPC error
        list(grpc_client.stream_faces(iter(rgb_frames[:2])))


def test_grpc_video_by_uri_and_its_errors(grpc_client, video_dir, face_video, zidane_bytes):
    inside = video_dir / "sdk-face.avi"
    inside.write_bytes(face_video.read_bytes())
    frames = list(grpc_client.detect_faces_in_video(percept.VideoURI(str(inside)), max_frames=3))
    assert [f.frame_index for f in frames] == [0, 1, 2]
    with pytest.raises(percept.Forbidden):
        list(grpc_client.detect_faces_in_video(percept.VideoURI(str(face_video))))
    with pytest.raises(percept.InvalidInput, match="truncated"):
        grpc_client.detect_faces(zidane_bytes[: len(zidane_bytes) // 3])


def test_async_grpc_client(face_server, object_server, face_video, zidane_bytes, scene):
    from harness.videos import read_frames

    rgb, _ = scene

    async def frames():
        for frame in read_frames(face_video)[:4]:
            await asyncio.sleep(0)
            yield frame

    async def main():
        async with percept.AsyncGrpcClient(
            face=face_server.address, object=object_server.address
        ) as c:
            faces = await c.detect_faces(zidane_bytes, encodings=True)
            objects = await c.detect_objects(rgb, color="rgb")
            video = [
                f  # untracked: each call has track ids of its own
                async for f in c.detect_faces_in_video(face_video, frame_stride=3, tracker="off")
            ]
            live = [f async for f in c.stream_faces(frames(), color="rgb")]
            info = await c.model_info()
            compared = await c.compare_faces(zidane_bytes, zidane_bytes)
            health = await c.health()
            return faces, objects, video, live, info, compared, health

    faces, objects, video, live, info, compared, health = asyncio.run(main())
    with percept.GrpcClient(face=face_server.address, object=object_server.address) as sync:
        assert faces == sync.detect_faces(zidane_bytes, encodings=True)
        assert objects == sync.detect_objects(rgb, color="rgb")
        assert video == list(sync.detect_faces_in_video(face_video, frame_stride=3, tracker="off"))
    assert [f.frame_index for f in video] == [0, 3, 6, 9]
    assert [f.frame_index for f in live] == [0, 1, 2, 3]
    assert info.class_names[0] == "circle" and compared.matches[0].match and health.ready


# --- replicas killed mid-call -----------------------------------------------------------------


@pytest.fixture()
def two_replicas():
    servers = [ServerProcess("face_service", env={"FACE_WORKERS": "1"}).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def test_a_replica_killed_during_a_batch_is_retried_around(two_replicas, zidane_bytes):
    a, b = two_replicas
    with percept.GrpcClient(face=f"{a.address},{b.address}", timeout=60) as c:
        c.detect_faces(zidane_bytes)  # both connected and SERVING
        killed = threading.Event()

        def call(i: int):
            if i == 4:
                a.signal(signal.SIGKILL)
                killed.set()
            return c.detect_faces(zidane_bytes)

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            results = list(pool.map(call, range(16)))
    assert killed.is_set() and a.proc.wait(10) == -signal.SIGKILL
    assert all(len(r.faces) == 1 for r in results)
    assert len({r.faces[0].box for r in results}) == 1
    assert (
        b.metric("percept_grpc_requests_total", method="/percept.face.v1.FaceService/DetectFaces")
        > 0
    )


def test_a_video_stream_resumes_after_its_replica_is_killed(two_replicas, face_video):
    a, b = two_replicas
    method = "/percept.face.v1.FaceService/DetectFacesInVideo"
    slow = {"encodings": True, "num_jitters": 8}  # a few seconds of work: time to kill it
    with percept.GrpcClient(face=f"{a.address},{b.address}") as c:
        expected = list(c.detect_faces_in_video(face_video, **slow))
        stream = c.detect_faces_in_video(face_video, **slow)
        frames = [next(stream)]
        serving, other = (a, b) if a.metric("percept_grpc_in_flight", method=method) else (b, a)
        assert serving.metric("percept_grpc_in_flight", method=method) == 1
        calls_before = other.metric("percept_grpc_requests_total", method=method)
        serving.signal(signal.SIGKILL)
        frames += list(stream)
    assert serving.proc.wait(10) == -signal.SIGKILL
    assert other.metric("percept_grpc_requests_total", method=method) == calls_before + 1
    assert [f.frame_index for f in frames] == list(range(FRAMES))  # each frame once, in order
    assert [boxes(f.faces) for f in frames] == [boxes(f.faces) for f in expected]
    assert all(len(f.faces[0].encoding) == 128 for f in frames if f.faces)
