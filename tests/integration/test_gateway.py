"""The REST gateway end to end: real Redis, real gRPC servers, real models."""

from __future__ import annotations

import threading
import time

import grpc
import httpx
import numpy as np
import pytest
import redis
from percept.common.v1 import image_pb2
from percept.face.v1 import face_service_pb2 as face_pb
from percept.face.v1 import face_service_pb2_grpc as face_grpc
from percept.object.v1 import object_service_pb2 as object_pb
from percept.object.v1 import object_service_pb2_grpc as object_grpc

from harness.faces import FACE_PATCH
from harness.videos import moving_patch_video, moving_shapes_video
from object_service import synthetic
from tests.conftest import corrupt_png, encode
from tests.integration.conftest import GATEWAY_MAX_IMAGE_BYTES
from tests.support import GatewayProcess, submit, task_events, wait_done, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def http(gateway):
    with gateway.client(timeout=120) as client:
        yield client


def boxes(items) -> list[tuple[float, float, float, float]]:
    return [
        (i["box"]["left"], i["box"]["top"], i["box"]["right"], i["box"]["bottom"]) for i in items
    ]


def grpc_boxes(items) -> list[tuple[float, float, float, float]]:
    return [(i.box.left, i.box.top, i.box.right, i.box.bottom) for i in items]


@pytest.fixture(scope="module")
def scene():
    img, truth = synthetic.make_scene(np.random.default_rng(99))
    return encode(img, ".png"), truth


# --- the four routes, async and simple mode, equal to the gRPC services ---------


def test_face_image_async_equals_grpc(http, face_server, zidane_bytes):
    response = submit(http, "/api/detect/face/image", zidane_bytes, data={"encodings": "true"})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and response.headers["location"] == body["status_url"]
    assert body["status_url"].endswith(f"/api/task/{body['task_id']}")
    task = wait_done(http, body["task_id"])
    assert (
        task["status"] == "succeeded"
        and task["kind"] == "face_detection"
        and task["media"] == "image"
    )
    assert task["started_at"] and task["finished_at"] and task["expires_at"]
    with grpc.insecure_channel(face_server.address) as channel:
        direct = face_grpc.FaceServiceStub(channel).DetectFaces(
            face_pb.DetectFacesRequest(
                image=image_pb2.Image(content=zidane_bytes),
                options=face_pb.FaceOptions(return_encodings=True),
            )
        )
    result = task["result"]
    assert boxes(result["faces"]) == grpc_boxes(direct.faces)
    assert np.allclose(result["faces"][0]["encoding"], direct.faces[0].encoding)
    assert (result["image_width"], result["image_height"]) == (1280, 720)


def test_face_image_simple_mode(http, zidane_bytes):
    response = submit(http, "/api/detect/face/image", zidane_bytes, wait="true", landmarks="true")
    assert response.status_code == 200
    task = response.json()
    assert task["status"] == "succeeded" and len(task["result"]["faces"]) == 1
    assert len(task["result"]["faces"][0]["landmarks"]["chin"]) == 17


def test_object_image_both_modes_equal_grpc(http, object_server, scene):
    content, truth = scene
    with grpc.insecure_channel(object_server.address) as channel:
        direct = object_grpc.ObjectServiceStub(channel).DetectObjects(
            object_pb.DetectObjectsRequest(image=image_pb2.Image(content=content))
        )
    simple = submit(
        http, "/api/detect/object/image", content, "scene.png", "image/png", wait="true"
    )
    assert simple.status_code == 200
    queued = submit(http, "/api/detect/object/image", content, "scene.png", "image/png")
    assert queued.status_code == 202
    for task in (simple.json(), wait_done(http, queued.json()["task_id"])):
        detections = task["result"]["detections"]
        assert [d["label"] for d in detections] == [d.label for d in direct.detections]
        assert np.allclose(boxes(detections), grpc_boxes(direct.detections), atol=1e-3)
        assert len(detections) >= len(truth)


def test_object_options_as_query_or_form(http, scene):
    content, truth = scene
    name = truth[0].name
    for kwargs in ({"classes": name}, {"data": {"classes": name}}):
        response = submit(
            http, "/api/detect/object/image", content, "s.png", "image/png", wait="true", **kwargs
        )
        assert response.status_code == 200
        labels = {d["label"] for d in response.json()["result"]["detections"]}
        assert labels == {name}
        assert response.json()["options"]["class_names"] == [name]


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("gw") / "face.avi"
    moving_patch_video(path, np.ascontiguousarray(astronaut[FACE_PATCH]), n_frames=16)
    return path.read_bytes()


@pytest.fixture(scope="module")
def shapes_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("gw") / "shapes.avi"
    truth = moving_shapes_video(path, n_frames=12)
    return path.read_bytes(), truth


def test_face_video_task_streams_progress_and_frames(http, gateway, face_video):
    response = submit(
        http, "/api/detect/face/video", face_video, "face.avi", "video/x-msvideo", frame_stride="2"
    )
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    events = []
    frame_before_finish = None
    for name, data in task_events(gateway, task_id):
        events.append((name, data))
        if name == "frame" and frame_before_finish is None:
            # a frame arrived: the task is still running at that moment
            frame_before_finish = http.get(f"/api/task/{task_id}").json()["status"]
    frames = [d for n, d in events if n == "frame"]
    progress = [d["done"] for n, d in events if n == "progress"]
    statuses = [d["status"] for n, d in events if n == "status"]
    assert statuses[0] == "queued" and statuses[-1] == "succeeded" and "running" in statuses
    assert [f["frame_index"] for f in frames] == list(range(0, 16, 2))
    assert progress == sorted(progress) and progress[-1] == 8
    assert all(len(f["faces"]) == 1 for f in frames)
    assert frame_before_finish in ("running", "succeeded")
    final = events[-1][1]["task"]
    assert final["progress"] == {"done": 8, "total": 8}
    assert [f["frame_index"] for f in final["result"]["frames"]] == list(range(0, 16, 2))

    # A client connecting late still gets everything.
    late = httpx.get(
        f"{gateway.url}/api/task/{task_id}/events", headers=gateway.headers, timeout=30
    ).text
    assert late.count("event: frame") == 8 and "succeeded" in late


def test_object_video_simple_mode_follows_the_shapes(http, shapes_video):
    content, truth = shapes_video
    response = submit(
        http,
        "/api/detect/object/video",
        content,
        "s.avi",
        "video/x-msvideo",
        wait="true",
        max_frames="6",
    )
    assert response.status_code == 200
    frames = response.json()["result"]["frames"]
    assert [f["frame_index"] for f in frames] == list(range(6))
    for frame in frames:
        labels = {d["label"] for d in frame["detections"] if d["confidence"] > 0.5}
        assert labels == {"circle", "square"}


# --- task management -----------------------------------------------------------------------


def test_cancel_a_running_video_stops_the_backend(http, face_server, tmp_path, astronaut):
    path = tmp_path / "long.avi"
    moving_patch_video(path, np.ascontiguousarray(astronaut[FACE_PATCH]), n_frames=120, step=(3, 1))
    metric = "percept_frames_processed_total"
    before = face_server.metric(metric, method="DetectFacesInVideo")
    task_id = submit(
        http, "/api/detect/face/video", path.read_bytes(), "long.avi", "video/x-msvideo"
    ).json()["task_id"]
    for _ in range(300):
        body = http.get(f"/api/task/{task_id}").json()
        if body["progress"]["done"] >= 2:
            break
        time.sleep(0.05)
    cancelled = http.delete(f"/api/task/{task_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    settled = None
    for _ in range(30):
        threading.Event().wait(0.3)
        now = face_server.metric(metric, method="DetectFacesInVideo") - before
        if now == settled:
            break
        settled = now
    assert settled < 60, settled  # the backend stopped long before the 120 frames
    assert http.get(f"/api/task/{task_id}").json()["status"] == "cancelled"
    again = http.delete(f"/api/task/{task_id}")
    assert again.status_code == 409 and "cancelled" in again.json()["error"]["message"]


def test_list_paginates_newest_first_and_filters(http, zidane_bytes, scene):
    ids = [submit(http, "/api/detect/face/image", zidane_bytes).json()["task_id"] for _ in range(3)]
    ids.append(
        submit(http, "/api/detect/object/image", scene[0], "s.png", "image/png").json()["task_id"]
    )
    for task_id in ids:
        wait_done(http, task_id)
    page1 = http.get("/api/tasks", params={"limit": 2}).json()
    page2 = http.get("/api/tasks", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    listed = [t["task_id"] for t in page1["tasks"] + page2["tasks"]]
    assert listed == ids[::-1]
    created = [t["created_at"] for t in page1["tasks"] + page2["tasks"]]
    assert created == sorted(created, reverse=True)
    faces = http.get(
        "/api/tasks", params={"kind": "face_detection", "status": "succeeded", "limit": 3}
    ).json()
    assert [t["task_id"] for t in faces["tasks"]] == ids[2::-1]
    assert http.get("/api/tasks", params={"status": "exploded"}).status_code == 422


def test_idempotency_key_returns_the_same_task(http, zidane_bytes):
    first = submit(http, "/api/detect/face/image", zidane_bytes, data=None)
    key = {"Idempotency-Key": f"order-{first.json()['task_id']}"}
    a = http.post(
        "/api/detect/face/image", files={"file": ("z.jpg", zidane_bytes, "image/jpeg")}, headers=key
    )
    b = http.post(
        "/api/detect/face/image", files={"file": ("z.jpg", zidane_bytes, "image/jpeg")}, headers=key
    )
    assert a.status_code == b.status_code == 202
    assert a.json()["task_id"] == b.json()["task_id"]
    # Replayed once the task has ended: the same task, and its status as it is now.
    ended = wait_done(http, a.json()["task_id"])
    c = http.post(
        "/api/detect/face/image", files={"file": ("z.jpg", zidane_bytes, "image/jpeg")}, headers=key
    )
    assert c.status_code == 202 and c.json()["task_id"] == a.json()["task_id"]
    assert c.json()["status"] == ended["status"] == "succeeded"
    bad = http.post(
        "/api/detect/face/image",
        files={"file": ("z.jpg", zidane_bytes, "image/jpeg")},
        headers={"Idempotency-Key": "no spaces allowed"},
    )
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["error"]["message"]


def test_unknown_and_expired_tasks(http, face_server, object_server, redis_url, zidane_bytes):
    assert http.get("/api/task/0123456789abcdef").status_code == 404
    short = GatewayProcess(
        "gateway",
        env={"REDIS_URL": redis_url, "GATEWAY_TASK_TTL_S": "1", "GATEWAY_FACE_TARGETS": face_server.address,
             "GATEWAY_OBJECT_TARGETS": object_server.address},
    ).start()  # fmt: skip
    try:
        task_id = submit(short.client(), "/api/detect/face/image", zidane_bytes).json()["task_id"]

        def expired() -> httpx.Response | None:  # its record goes 1 s after it finishes
            r = httpx.get(f"{short.url}/api/task/{task_id}", headers=short.headers)
            return r if r.status_code == 410 else None

        gone = wait_until(expired, 10, "the task expired")
        assert gone.status_code == 410 and "expired" in gone.json()["error"]["message"]
        assert (
            httpx.delete(f"{short.url}/api/task/{task_id}", headers=short.headers).status_code
            == 410
        )
    finally:
        short.stop()


# --- bad input: clear 4xx, nothing reaches a backend ---------------------------------------


def test_bad_uploads_are_rejected_by_the_gateway(http, face_server, zidane_bytes, face_video):
    calls_before = face_server.metric("percept_grpc_requests_total")
    cases = [
        (http.post("/api/detect/face/image", data={"upsample": "1"}), 422, "'file' is required"),
        (
            http.post(
                "/api/detect/face/image", content=b"raw", headers={"content-type": "image/jpeg"}
            ),
            415,
            "multipart/form-data",
        ),
        (submit(http, "/api/detect/face/image", b""), 422, "empty"),
        (
            submit(http, "/api/detect/face/image", zidane_bytes[: len(zidane_bytes) // 3]),
            422,
            "truncated",
        ),
        (
            submit(http, "/api/detect/face/image", b"hello", "a.txt", "text/plain"),
            415,
            "text/plain",
        ),
        (
            submit(http, "/api/detect/face/image", b"not really a jpeg"),
            422,
            "not a recognised image",
        ),
        (
            submit(http, "/api/detect/face/video", b"not a video" * 100, "v.mp4", "video/mp4"),
            422,
            "could not be opened",
        ),
        (
            submit(http, "/api/detect/face/video", zidane_bytes, "v.mp4", "image/jpeg"),
            415,
            "send a video",
        ),
        (
            submit(http, "/api/detect/face/image", b"\xff" * (GATEWAY_MAX_IMAGE_BYTES + 10)),
            413,
            "limit",
        ),
        (submit(http, "/api/detect/face/image", zidane_bytes, upsample="9"), 422, "upsample"),
        (submit(http, "/api/detect/face/image", zidane_bytes, detector="magic"), 422, "detector"),
        (submit(http, "/api/detect/face/image", zidane_bytes, colour="red"), 422, "colour"),
        (
            submit(http, "/api/detect/object/image", zidane_bytes, confidence_threshold="2"),
            422,
            "confidence_threshold",
        ),
        (submit(http, "/api/detect/object/image", zidane_bytes, classes="unicorn"), 422, "unicorn"),
        (submit(http, "/api/detect/object/image", zidane_bytes, classes="2,99"), 422, "0..3"),
        (
            submit(
                http,
                "/api/detect/face/video",
                face_video,
                "v.avi",
                "video/x-msvideo",
                frame_stride="100001",
            ),
            422,
            "frame_stride",
        ),
        (submit(http, "/api/detect/face/image", zidane_bytes, wait="maybe"), 422, "true or false"),
        (
            submit(
                http,
                "/api/detect/face/image",
                zidane_bytes,
                landmarks="true",
                return_landmarks="false",
            ),
            422,
            "same option",
        ),  # fmt: skip
        (
            submit(http, "/api/detect/face/image", b"\x00\x00\x00\x18ftypmp42" + bytes(64)),
            422,
            "a video (MP4), not an image",
        ),
    ]
    for response, status, message in cases:
        assert response.status_code == status, (response.status_code, response.text)
        error = response.json()["error"]
        assert message in error["message"], error
    assert cases[9][0].json()["error"]["fields"] == ["upsample"]
    assert (
        face_server.metric("percept_grpc_requests_total") == calls_before
    )  # nothing reached the backend


def test_backend_rejection_fails_the_task_with_its_message(http, astronaut):
    corrupt = corrupt_png(astronaut)
    queued = submit(http, "/api/detect/face/image", corrupt, "a.png", "image/png")
    assert queued.status_code == 202
    task = wait_done(http, queued.json()["task_id"])
    assert task["status"] == "failed" and task["error"]["code"] == "invalid_argument"
    assert "corrupt" in task["error"]["message"]
    assert task["replica"]  # the replica that refused it, as for a task that succeeded
    simple = submit(http, "/api/detect/face/image", corrupt, "a.png", "image/png", wait="true")
    assert simple.status_code == 422 and "corrupt" in simple.json()["error"]["message"]
    assert simple.json()["error"]["task_id"]  # the failed task is recorded


# --- operations ------------------------------------------------------------------------------


def test_health_readiness_metrics_and_docs(http, zidane_bytes):
    assert http.get("/healthz").json() == {"status": "ok"}
    wait_done(http, submit(http, "/api/detect/face/image", zidane_bytes).json()["task_id"])
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "redis": True,
        "queues": True,
        "face": True,
        "object": True,
    }
    metrics = http.get("/metrics").text
    assert (
        'percept_gateway_tasks_submitted_total{kind="face_detection",media="image",mode="queued"}'
        in metrics
    )
    assert 'percept_gateway_queue_waiting{kind="face_detection",media="image"}' in metrics
    assert "percept_gateway_queue_oldest_waiting_seconds" in metrics
    assert (
        'percept_gateway_http_request_seconds_bucket{le="0.005",route="/api/detect/face/image"}'
        in metrics
    )
    spec = http.get("/openapi.json").json()
    error_ref = "#/components/schemas/ErrorBody"
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            statuses = op["responses"]
            ok = [s for s in statuses if s.startswith("2")]
            assert ok and all(statuses[s].get("content") for s in ok if s != "204"), (method, path)
            for status, response in statuses.items():
                if status.startswith(("4", "5")) and path.startswith("/api/"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": error_ref}, (method, path, status)
            if path.startswith("/api/"):
                assert any(s.startswith(("4", "5")) for s in statuses), (method, path)
    submit_op = spec["paths"]["/api/detect/face/image"]["post"]["responses"]
    assert {"200", "202", "413", "415", "422"} <= set(submit_op)
    # The key check runs before every keyed route: its answers are on each of them.
    for path in ("/api/tasks", "/api/task/{task_id}", "/api/kinds", "/api/collections"):
        for op in spec["paths"][path].values():
            assert {"401", "429", "503"} <= set(op["responses"]), path
    assert "403" in spec["paths"]["/metrics"]["get"]["responses"]
    assert {"400", "415"} <= set(spec["paths"]["/api/collections"]["post"]["responses"])
    assert "401" not in spec["paths"]["/healthz"]["get"]["responses"]
    assert {"/api/detect/face/image", "/api/detect/face/video", "/api/detect/object/image", "/api/detect/object/video",
            "/api/task/{task_id}", "/api/task/{task_id}/events", "/api/tasks"} <= set(spec["paths"])  # fmt: skip


def test_simple_mode_tasks_are_listed_and_measured(http, zidane_bytes):
    def finished() -> float:
        line = 'percept_gateway_tasks_finished_total{kind="face_detection",media="image",status="succeeded"} '
        text = http.get("/metrics").text
        return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(line))

    before = finished()
    simple = submit(http, "/api/detect/face/image", zidane_bytes, wait="true")
    assert simple.status_code == 200
    task = simple.json()
    assert task["status"] == "succeeded" and task["attempts"] == 1
    listed = http.get("/api/tasks", params={"kind": "face_detection", "limit": 5}).json()["tasks"]
    assert task["task_id"] in [t["task_id"] for t in listed]
    assert http.get(f"/api/task/{task['task_id']}").json()["result"] == task["result"]
    metrics = http.get("/metrics").text
    assert (
        'percept_gateway_tasks_submitted_total{kind="face_detection",media="image",mode="inline"}'
        in metrics
    )
    assert finished() == before + 1


def test_readyz_fails_without_backends(redis_url):
    lonely = GatewayProcess(
        "gateway",
        env={"REDIS_URL": redis_url, "GATEWAY_FACE_TARGETS": "127.0.0.1:9", "GATEWAY_OBJECT_TARGETS": "127.0.0.1:9",
             "GATEWAY_DISPATCHERS": "false"},
    ).start()  # fmt: skip
    try:
        ready = httpx.get(f"{lonely.url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"] == {
            "redis": True,
            "queues": True,
            "face": False,
            "object": False,
        }
    finally:
        lonely.stop()


def test_redis_is_really_used(redis_url, http, zidane_bytes):
    task_id = submit(http, "/api/detect/face/image", zidane_bytes).json()["task_id"]
    wait_done(http, task_id)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.hget(f"percept:task:{task_id}", "status") == "succeeded"
    assert 0 < r.ttl(f"percept:task:{task_id}") <= 86_400
    assert not r.exists(f"percept:input:{task_id}")  # the upload is deleted once the task ends


def test_list_filters_search_and_the_console_statistics(http, redis_url, zidane_bytes, scene):
    import asyncio

    from gateway.jobs import JobStore
    from gateway.kinds import KINDS
    from gateway.stats import summarize

    start = time.time()
    face = submit(http, "/api/detect/face/image", zidane_bytes, wait="true").json()
    obj = submit(http, "/api/detect/object/image", scene[0], "s.png", "image/png").json()
    wait_done(http, obj["task_id"])
    recent = http.get("/api/tasks", params={"since": start, "limit": 10}).json()["tasks"]
    assert {t["task_id"] for t in recent} == {face["task_id"], obj["task_id"]}
    images = http.get("/api/tasks", params={"media": "video", "since": start}).json()["tasks"]
    assert images == []
    before = http.get("/api/tasks", params={"until": start, "limit": 500}).json()["tasks"]
    assert face["task_id"] not in {t["task_id"] for t in before}
    found = http.get("/api/tasks", params={"q": face["task_id"][:8]}).json()["tasks"]
    assert [t["task_id"] for t in found] == [face["task_id"]]
    assert http.get("/api/tasks", params={"q": "xyz"}).status_code == 422

    async def read():
        store = JobStore.from_url(redis_url, 60, 60, [k.id for k in KINDS])
        try:
            return await store.stats(5), await store.preview(face["task_id"])
        finally:
            await store.close()

    stats, preview = asyncio.run(read())
    now = summarize(stats["face_detection:image"][-2:])
    assert now["succeeded"] >= 1 and now["success_rate"] > 0 and now["run_p50_ms"] > 0
    # the upload is kept a while for the console to draw on
    from percept.face.v1 import face_service_pb2

    assert face_service_pb2.DetectFacesRequest.FromString(preview).image.content == zidane_bytes
