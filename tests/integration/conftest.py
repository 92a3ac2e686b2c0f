"""Real servers, started once per test session."""

from __future__ import annotations

import pytest

from tests.support import ServerProcess

FACE_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
FACE_MAX_IMAGE_PIXELS = 20_000_000


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def face_server(video_dir):
    server = ServerProcess(
        "face_service",
        env={
            "FACE_WORKERS": "2",
            "FACE_MAX_MESSAGE_BYTES": str(FACE_MAX_MESSAGE_BYTES),
            "FACE_MAX_IMAGE_PIXELS": str(FACE_MAX_IMAGE_PIXELS),
            "FACE_VIDEO_ALLOWED_DIRS": str(video_dir),
            "FACE_STREAM_WINDOW": "4",
        },
    ).start()
    yield server
    server.stop()
