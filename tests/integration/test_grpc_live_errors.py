"""A live stream fed by the caller's iterator that the service refuses (no token,
a wrong one) raises percept's error in the caller: the process exits 1 with the
message, never aborting (exit 134, "terminate called without an active
exception") while grpc's thread is still reading a frame from cv2.VideoCapture."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harness.videos import moving_patch_video
from tests.support import ROOT, ServerProcess

pytestmark = pytest.mark.slow

TOKEN = "live-errors-token"
FRAMES = 40

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import cv2
    import percept

    mode, address, token, video = sys.argv[1:5]

    def from_video():
        capture = cv2.VideoCapture(video)
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                yield bgr
        finally:
            capture.release()

    def slowly():
        for bgr in from_video():
            time.sleep(0.05)
            yield bgr

    frames = from_video() if mode == "video" else slowly()
    with percept.GrpcClient(face=address, object=address, token=token) as client:
        results = list(client.stream_faces(frames, color="bgr"))
    print(len(results), [r.frame_index for r in results] == list(range(len(results))))
    """
)


@pytest.fixture(scope="module")
def guarded_face(tmp_path_factory):
    """A face service that takes calls only with TOKEN."""
    server = ServerProcess(
        "face_service", env={"FACE_WORKERS": "1", "FACE_AUTH_TOKEN": TOKEN}
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("live-errors") / "clip.avi"
    moving_patch_video(path, np.full((60, 60, 3), 200, np.uint8), FRAMES)
    return path


def run_script(tmp_path, mode, address, token, clip) -> subprocess.CompletedProcess:
    script = tmp_path / "live.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERCEPT_")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "gen"), str(ROOT / "clients" / "python")]
    )
    return subprocess.run(
        [sys.executable, str(script), mode, address, token, str(clip)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(("mode", "token"), [("video", ""), ("video", "wrong"), ("slow", "wrong")])
def test_a_refused_live_stream_raises_and_never_aborts(tmp_path, guarded_face, clip, mode, token):
    # The abort depended on where grpc's reading thread was when the process exited,
    # so one run proves little: every one of several must end the same way.
    for _ in range(6 if mode == "video" else 2):
        done = run_script(tmp_path, mode, guarded_face.address, token, clip)
        assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
        assert "percept.errors.Unauthorized: missing or wrong token" in done.stderr
        assert "terminate called" not in done.stderr and "FATAL" not in done.stderr


def test_the_right_token_streams_every_frame_in_order(tmp_path, guarded_face, clip):
    done = run_script(tmp_path, "video", guarded_face.address, TOKEN, clip)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(FRAMES), "True"]
