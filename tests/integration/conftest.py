"""Real servers, started once per test session."""

from __future__ import annotations

import pytest

from tests.support import ROOT, GatewayProcess, ServerProcess

FACE_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
FACE_MAX_IMAGE_PIXELS = 20_000_000


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def face_server(video_dir, tmp_path_factory):
    gallery = tmp_path_factory.mktemp("face-gallery") / "gallery.sqlite3"
    server = ServerProcess(
        "face_service",
        env={
            "FACE_WORKERS": "2",
            "FACE_GALLERY_URL": f"sqlite:///{gallery}",
            "FACE_MAX_MESSAGE_BYTES": str(FACE_MAX_MESSAGE_BYTES),
            "FACE_MAX_IMAGE_PIXELS": str(FACE_MAX_IMAGE_PIXELS),
            "FACE_VIDEO_ALLOWED_DIRS": str(video_dir),
            "FACE_STREAM_WINDOW": "4",
        },
    ).start()
    yield server
    server.stop()


DEMO_MODEL = ROOT / "object_service" / "models" / "shapes-yolo.pt"


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def object_server(video_dir, onnx_cache):
    """The demo model on ONNX Runtime (the CPU default), two workers."""
    server = ServerProcess(
        "object_service",
        env={
            "OBJECT_MODEL": str(DEMO_MODEL),
            "OBJECT_WORKERS": "2",
            "OBJECT_CACHE_DIR": str(onnx_cache),
            "OBJECT_MAX_MESSAGE_BYTES": str(FACE_MAX_MESSAGE_BYTES),
            "OBJECT_MAX_IMAGE_PIXELS": str(FACE_MAX_IMAGE_PIXELS),
            "OBJECT_VIDEO_ALLOWED_DIRS": str(video_dir),
            "OBJECT_STREAM_WINDOW": "4",
            "OBJECT_VIDEO_BATCH": "2",
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def object_server_pytorch(onnx_cache):
    """The same model on the PyTorch backend, one worker."""
    server = ServerProcess(
        "object_service",
        env={"OBJECT_MODEL": str(DEMO_MODEL), "OBJECT_WORKERS": "1", "OBJECT_BACKEND": "pytorch"},
    ).start()
    yield server
    server.stop()


GATEWAY_MAX_IMAGE_BYTES = 2 * 1024 * 1024


@pytest.fixture(scope="session")
def redis_url():
    """A Redis database of the tests' own (`make test` starts Redis when none answers)."""
    import os

    import redis

    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    url = f"{base}/9"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="session")
def gateway(face_server, object_server, redis_url):
    server = GatewayProcess(
        "gateway",
        env={
            "REDIS_URL": redis_url,
            "GATEWAY_FACE_TARGETS": face_server.address,
            "GATEWAY_OBJECT_TARGETS": object_server.address,
            "GATEWAY_MAX_IMAGE_BYTES": str(GATEWAY_MAX_IMAGE_BYTES),
            "GATEWAY_WAIT_TIMEOUT_S": "60",
        },
    ).start()
    yield server
    server.stop()
