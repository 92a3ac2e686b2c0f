"""Task kinds are declared once: a kind added in a test is routed, queued,
dispatched, documented and measured end to end; options left unset over REST
reach the service unset."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import grpc
import httpx
import pytest
import uvicorn
from percept.face.v1 import face_service_pb2 as pb
from percept.face.v1 import face_service_pb2_grpc

from gateway import models
from gateway.app import create_app
from gateway.kinds import FACE, KINDS, TaskKind
from gateway.results import face_image
from gateway.settings import GatewaySettings
from tests.support import create_key, free_port, fresh_db, submit, wait_done

pytestmark = pytest.mark.slow

LANDMARKS = TaskKind(
    "face_landmarks",
    "image",
    FACE,
    "DetectFaces",
    "/api/test/landmarks",
    "Landmarks of every face (a kind declared by a test)",
    face_image,
    models.FaceImageResult,
    preset={"return_landmarks": "true"},
)


class InProcessGateway:
    """The gateway app served by uvicorn on a free port, in a thread of the test."""

    def __init__(self, settings: GatewaySettings, kinds) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings, kinds), host="127.0.0.1", port=self.port, log_config=None
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> InProcessGateway:
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            time.sleep(0.05)
        raise RuntimeError("the in-process gateway did not start")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def settings(redis_url: str, face: str, obj: str, **extra) -> GatewaySettings:
    return GatewaySettings(redis_url=redis_url, face_targets=face, object_targets=obj, **extra)


def admin(redis_url: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(redis_url)}"}


@pytest.fixture(scope="module")
def kinds_redis(redis_url):
    return fresh_db(redis_url, 11)


def test_a_kind_declared_once_works_end_to_end(
    kinds_redis, face_server, object_server, zidane_bytes
):
    with (
        InProcessGateway(
            settings(kinds_redis, face_server.address, object_server.address),
            (*KINDS, LANDMARKS),
        ) as gw,
        httpx.Client(base_url=gw.url, timeout=120, headers=admin(kinds_redis)) as http,
    ):
        # queued: a dispatcher takes it from the kind's own queue
        queued = submit(http, "/api/test/landmarks", zidane_bytes)
        assert queued.status_code == 202
        task = wait_done(http, queued.json()["task_id"])
        assert task["status"] == "succeeded" and task["kind"] == "face_landmarks"
        assert task["options"] == {"return_landmarks": True}
        assert len(task["result"]["faces"][0]["landmarks"]["chin"]) == 17
        assert task["replica"] == f"{socket.gethostname()}:{face_server.port}"  # who ran it
        # simple mode: the inline path
        simple = submit(http, "/api/test/landmarks", zidane_bytes, wait="true")
        assert simple.status_code == 200 and simple.json()["result"]["faces"][0]["landmarks"]
        # listed, filterable, documented, measured
        listed = http.get("/api/tasks", params={"kind": "face_landmarks"}).json()["tasks"]
        assert {t["task_id"] for t in listed} == {task["task_id"], simple.json()["task_id"]}
        spec = http.get("/openapi.json").json()
        body = spec["paths"]["/api/test/landmarks"]["post"]["requestBody"]
        properties = body["content"]["multipart/form-data"]["schema"]["properties"]
        assert "upsample" in properties and "return_landmarks" not in properties  # preset
        kinds = {k["path"] for k in http.get("/api/kinds").json()["kinds"]}
        assert "/api/test/landmarks" in kinds
        metrics = http.get("/metrics").text
        assert (
            'percept_gateway_tasks_finished_total{kind="face_landmarks",media="image",status="succeeded"}'
            in metrics
        )


class RecordingFaceService(face_service_pb2_grpc.FaceServiceServicer):
    """A stand-in FaceService that records the requests the gateway sends."""

    def __init__(self) -> None:
        self.requests: list[pb.DetectFacesRequest] = []

    async def DetectFaces(self, request, context):
        self.requests.append(request)
        return pb.DetectFacesResponse(image_width=1, image_height=1)


def test_options_left_unset_over_rest_reach_the_service_unset(kinds_redis, zidane_bytes):
    recorder = RecordingFaceService()
    port = free_port()
    ready = threading.Event()
    stop: list = []

    async def serve() -> None:
        server = grpc.aio.server()
        face_service_pb2_grpc.add_FaceServiceServicer_to_server(recorder, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        done = asyncio.Event()
        stop.append((asyncio.get_running_loop(), done))
        ready.set()
        await done.wait()
        await server.stop(0)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        # the stand-in has no health service: gRPC then counts it healthy
        with (
            InProcessGateway(
                settings(kinds_redis, f"127.0.0.1:{port}", f"127.0.0.1:{port}"), KINDS
            ) as gw,
            httpx.Client(base_url=gw.url, timeout=60, headers=admin(kinds_redis)) as http,
        ):
            first = submit(http, "/api/detect/face/image", zidane_bytes, wait="true")
            second = submit(
                http, "/api/detect/face/image", zidane_bytes, wait="true",
                data={"upsample": "0", "num_jitters": "3", "detector": "cnn"},
            )  # fmt: skip
        assert first.status_code == second.status_code == 200, (first.text, second.text)
        unset, given = recorder.requests
        assert not unset.options.HasField("upsample")  # the service's default (1) applies
        assert unset.options.num_jitters == 0 and unset.options.detector == pb.DETECTOR_UNSPECIFIED
        assert given.options.HasField("upsample") and given.options.upsample == 0
        assert given.options.num_jitters == 3 and given.options.detector == pb.DETECTOR_CNN
        assert unset.image.content == zidane_bytes  # the upload travels untouched
    finally:
        loop, done = stop[0]
        loop.call_soon_threadsafe(done.set)
        thread.join(10)
