"""Health, reflection and graceful shutdown of a real face server."""

from __future__ import annotations

import signal
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from percept.common.v1 import video_pb2
from percept.face.v1 import face_service_pb2 as pb
from percept.face.v1 import face_service_pb2_grpc

from harness.faces import FACE_PATCH
from harness.videos import moving_patch_video
from tests.support import ServerProcess

pytestmark = pytest.mark.slow

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_reflection_lists_the_services(face_server):
    with grpc.insecure_channel(face_server.address) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert "percept.face.v1.FaceService" in services
        assert "grpc.health.v1.Health" in services
        pool_db = ProtoReflectionDescriptorDatabase(channel)
        method_names = [
            m.name
            for m in pool_db.FindFileContainingSymbol("percept.face.v1.FaceService")
            .service[0]
            .method
        ]
        assert method_names == [
            "DetectFaces", "CompareFaces", "DetectFacesInVideo", "StreamFaces",
            "CreateCollection", "ListCollections", "DescribeCollection", "DeleteCollection",
            "EnrollFaces", "ListFaces", "DeleteFaces", "DeleteSubject",
            "IdentifyFaces", "SearchFaces", "VerifyFace",
        ]  # fmt: skip


def test_health_serving_per_service(face_server):
    with grpc.insecure_channel(face_server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", "percept.face.v1.FaceService"):
            assert (
                stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status == SERVING
            )
        with pytest.raises(grpc.RpcError) as info:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_sigterm_goes_not_serving_and_finishes_in_flight_calls(tmp_path, astronaut):
    import numpy as np

    video = tmp_path / "drain.avi"
    n_frames = 30
    moving_patch_video(
        video, np.ascontiguousarray(astronaut[FACE_PATCH]), n_frames=n_frames, step=(6, 3)
    )
    server = ServerProcess(
        "face_service",
        env={
            "FACE_WORKERS": "1",
            "FACE_DRAIN_DELAY_S": "1.5",
            "FACE_GRACE_PERIOD_S": "60",
            "FACE_VIDEO_ALLOWED_DIRS": str(tmp_path),
        },
    )
    # Health reports NOT_SERVING while the model loads, then SERVING.
    server.start()
    try:
        with grpc.insecure_channel(server.address) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=""), timeout=120
            )
            assert next(watch).status == SERVING
            call = face_service_pb2_grpc.FaceServiceStub(channel).DetectFacesInVideo(
                pb.DetectFacesInVideoRequest(video=video_pb2.VideoSource(uri=str(video))),
                timeout=120,
            )
            first = next(call)  # the call is in flight
            server.signal(signal.SIGTERM)
            assert next(watch).status == NOT_SERVING
            rest = list(call)  # the in-flight call finishes during the grace period
            assert [r.frame_index for r in [first, *rest]] == list(range(n_frames))
            assert call.code() == grpc.StatusCode.OK
            watch.cancel()
        done = threading.Event()
        threading.Thread(target=lambda: (server.proc.wait(60), done.set()), daemon=True).start()
        assert done.wait(60), "server did not exit after draining"
        assert server.proc.returncode == 0
        assert "draining" in server.log()
    finally:
        server.stop()


def test_server_refuses_to_start_half_working(tmp_path):
    server = ServerProcess("face_service", env={"FACE_WORKERS": "0"})
    with pytest.raises(RuntimeError) as info:
        server.start(timeout=60)
    assert "workers" in str(info.value)


def test_workers_exit_when_their_server_is_killed():
    import time

    import psutil

    server = ServerProcess("face_service", env={"FACE_WORKERS": "2"}).start()
    workers = [
        p
        for p in psutil.Process(server.proc.pid).children()
        if "spawn_main" in " ".join(p.cmdline())
    ]
    assert len(workers) >= 2
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(
        w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers
    ):
        time.sleep(0.2)
    assert not [w.pid for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE], (
        "orphaned workers"
    )
    server.stop()


def test_replicas_describe_themselves(face_server):
    """GetReplicaInfo: what the console lists for each replica."""
    import socket

    from percept.common.v1 import image_pb2, replica_service_pb2, replica_service_pb2_grpc

    with grpc.insecure_channel(face_server.address) as channel:
        info = replica_service_pb2_grpc.ReplicaServiceStub(channel).GetReplicaInfo
        before = info(replica_service_pb2.GetReplicaInfoRequest(), timeout=5)
        face = face_service_pb2_grpc.FaceServiceStub(channel)
        with pytest.raises(grpc.RpcError):
            face.DetectFaces(
                pb.DetectFacesRequest(image=image_pb2.Image(content=b"junk")), timeout=30
            )
        after = info(replica_service_pb2.GetReplicaInfoRequest(), timeout=5)
    assert before.replica == after.replica == f"{socket.gethostname()}:{face_server.port}"
    assert list(after.services) == ["percept.face.v1.FaceService"]
    assert after.backend == "dlib" and after.device == "cpu" and after.serving
    assert after.workers == after.workers_ready == 2
    assert after.calls_refused == before.calls_refused + 1  # the junk image: bad input
    assert after.calls_failed == before.calls_failed  # ... not a fault of the replica
    assert after.calls_served == before.calls_served  # monitoring calls are not counted
    assert after.started_at <= time.time()
