"""Videos that end before their container said they would (cut in half,
timestamps stretched over hours) succeed with the frames they had, marked
partial with the reason, over gRPC (both services), REST (task record, SSE)
and the SDK; an intact video says partial false."""

from __future__ import annotations

import dataclasses
import json
import shutil

import grpc
import numpy as np
import pytest
from percept.common.v1 import video_pb2
from percept.face.v1 import face_service_pb2 as face_pb
from percept.face.v1 import face_service_pb2_grpc as face_grpc
from percept.object.v1 import object_service_pb2 as object_pb
from percept.object.v1 import object_service_pb2_grpc as object_grpc

from harness.faces import FACE_PATCH
from harness.videos import moving_patch_video, mp4_video, stretch_mp4, truncate
from tests.support import run_percept, task_events

pytestmark = pytest.mark.slow

FRAMES = 20


@pytest.fixture(scope="module")
def videos(video_dir, astronaut):
    """name -> path (in the servers' allowed directory): an intact AVI of a face
    and MP4, each cut at half, and the MP4 with its frames stretched over 10 h."""
    paths = {"face.avi": video_dir / "partial-face.avi", "clip.mp4": video_dir / "partial-clip.mp4"}
    moving_patch_video(
        paths["face.avi"], np.ascontiguousarray(astronaut[FACE_PATCH]), FRAMES, step=(8, 4)
    )
    mp4_video(paths["clip.mp4"], FRAMES)
    for name in ("face.avi", "clip.mp4"):
        cut = video_dir / f"partial-cut-{name}"
        shutil.copy(paths[name], cut)
        truncate(cut, 0.5)
        paths[f"cut-{name}"] = cut
    stretched = video_dir / "partial-stretched.mp4"
    shutil.copy(paths["clip.mp4"], stretched)
    stretch_mp4(stretched, hours=10)
    paths["stretched.mp4"] = stretched
    return paths


BROKEN = ("cut-face.avi", "cut-clip.mp4", "stretched.mp4")


def check_partial(summary: dict, frames: list[dict], name: str) -> None:
    """What a user reads from a partial video's summary matches its frames."""
    assert summary["partial"] is True, (name, summary)
    assert summary["expected_frames"] == FRAMES
    assert 1 <= summary["processed_frames"] == len(frames) < FRAMES
    assert summary["last_frame_index"] == frames[-1]["frame_index"]
    assert f"processed is {frames[-1]['frame_index']}" in summary["reason"]
    assert f"declares {FRAMES} frames" in summary["reason"]
    assert "truncated" in summary["reason"]


def grpc_summary(response) -> dict:
    s = response.summary
    return {
        "partial": s.partial,
        "reason": s.reason,
        "expected_frames": s.expected_frames,
        "processed_frames": s.processed_frames,
        "last_frame_index": s.last_frame_index,
    }


@pytest.fixture(scope="module")
def stubs(face_server, object_server):
    with (
        grpc.insecure_channel(face_server.address) as face_channel,
        grpc.insecure_channel(object_server.address) as object_channel,
    ):
        yield {
            "face": (face_grpc.FaceServiceStub(face_channel).DetectFacesInVideo,
                     face_pb.DetectFacesInVideoRequest),
            "object": (object_grpc.ObjectServiceStub(object_channel).DetectObjectsInVideo,
                       object_pb.DetectObjectsInVideoRequest),
        }  # fmt: skip


@pytest.mark.parametrize("service", ["face", "object"])
@pytest.mark.parametrize("name", BROKEN)
def test_grpc_partial_video_ends_with_a_partial_summary(stubs, videos, service, name):
    call, request = stubs[service]
    path = videos[name]
    # by bytes for the cut ones, by path for the stretched one: both sources tell
    source = (
        video_pb2.VideoSource(uri=str(path))
        if name == "stretched.mp4"
        else video_pb2.VideoSource(content=path.read_bytes())
    )
    responses = list(call(request(video=source), timeout=180))
    assert all(not r.HasField("summary") for r in responses[:-1])
    assert responses[-1].HasField("summary")
    frames = [{"frame_index": r.frame_index} for r in responses]
    assert [f["frame_index"] for f in frames] == list(range(len(frames)))
    check_partial(grpc_summary(responses[-1]), frames, name)
    assert all(r.expected_frames == FRAMES for r in responses)
    if name == "stretched.mp4":
        assert len(responses) == 1 and "10.0 h" in responses[-1].summary.reason
    if name == "cut-face.avi" and service == "face":  # the frames it did decode are good
        assert all(len(r.faces) == 1 for r in responses)


@pytest.mark.parametrize("service", ["face", "object"])
def test_grpc_intact_video_is_not_partial(stubs, videos, service):
    call, request = stubs[service]
    source = video_pb2.VideoSource(content=videos["clip.mp4"].read_bytes())
    responses = list(call(request(video=source, frame_stride=3), timeout=180))
    expected = -(-FRAMES // 3)
    assert [r.frame_index for r in responses] == list(range(0, FRAMES, 3))
    summary = responses[-1].summary
    assert responses[-1].HasField("summary") and not summary.partial and summary.reason == ""
    assert (summary.expected_frames, summary.processed_frames) == (expected, expected)
    assert summary.last_frame_index == responses[-1].frame_index


# --- REST: the task record and the SSE stream's final status ------------------------


@pytest.fixture(scope="module")
def http(gateway):
    with gateway.client(timeout=180) as client:
        yield client


MEDIA_TYPES = {".avi": "video/x-msvideo", ".mp4": "video/mp4"}


@pytest.mark.parametrize("name", BROKEN)
def test_rest_partial_video_succeeds_marked_partial(http, gateway, videos, name):
    path = videos[name]
    response = http.post(
        "/api/detect/face/video",
        files={"file": (name, path.read_bytes(), MEDIA_TYPES[path.suffix])},
    )
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    events = list(task_events(gateway, task_id, timeout=180))
    final_name, final = events[-1]
    assert final_name == "status" and final["status"] == "succeeded"
    streamed = [d for n, d in events if n == "frame"]
    task = final["task"]
    check_partial(task["result"]["summary"], task["result"]["frames"], name)
    assert [f["frame_index"] for f in streamed] == [
        f["frame_index"] for f in task["result"]["frames"]
    ]
    # the progress says the same: short of the total, and the record says why
    assert task["progress"] == {"done": len(streamed), "total": FRAMES}
    record = http.get(f"/api/task/{task_id}").json()
    assert record["status"] == "succeeded"
    assert record["result"]["summary"] == task["result"]["summary"]


def test_rest_simple_mode_partial_and_intact(http, videos):
    def run(name: str) -> dict:
        path = videos[name]
        response = http.post(
            "/api/detect/object/video",
            files={"file": (name, path.read_bytes(), MEDIA_TYPES[path.suffix])},
            params={"wait": "true"},
        )
        assert response.status_code == 200, response.text
        return response.json()

    cut = run("cut-clip.mp4")
    assert cut["status"] == "succeeded"
    check_partial(cut["result"]["summary"], cut["result"]["frames"], "cut-clip.mp4")
    intact = run("clip.mp4")
    assert intact["status"] == "succeeded"
    summary = intact["result"]["summary"]
    assert isinstance(summary.pop("tracks"), list) and summary.pop("gallery_searches") == 0
    assert summary == {
        "partial": False,
        "reason": None,
        "expected_frames": FRAMES,
        "processed_frames": FRAMES,
        "last_frame_index": FRAMES - 1,
    }
    assert intact["progress"] == {"done": FRAMES, "total": FRAMES}


# --- the SDK: REST tasks and gRPC frames carry the same summary ----------------------


def test_sdk_reads_the_summary_over_rest_and_grpc(gateway, face_server, videos):
    import percept

    path = videos["cut-face.avi"]
    with percept.Client(gateway.url, api_key=gateway.api_key) as client:
        task = client.wait(client.submit(percept.Kind.FACE, path, media="video"), timeout=180)
    assert task.succeeded and task.result.partial
    summary = task.result.summary
    assert summary.processed_frames == len(task.result.frames) < summary.expected_frames
    assert summary.last_frame_index == task.result.frames[-1].frame_index

    with percept.GrpcClient(face=face_server.address) as client:
        frames = list(client.detect_faces_in_video(path.read_bytes()))
    # the same, but for the track ids (each call has its own: test_tracking*.py)
    strip = [dataclasses.replace(t, track_id=0) for t in summary.tracks]
    assert dataclasses.replace(frames[-1].summary, tracks=()) == dataclasses.replace(
        summary, tracks=()
    )
    assert [dataclasses.replace(t, track_id=0) for t in frames[-1].summary.tracks] == strip
    assert all(f.summary is None for f in frames[:-1])


def test_cli_prints_the_reason_of_a_partial_video(gateway, videos):
    shown = run_percept(gateway, "detect", "face", str(videos["cut-face.avi"]))
    assert shown.returncode == 0, shown.stderr  # it succeeded: the frames it had are shown
    assert "partial video" in shown.stderr and "could not be decoded from frame" in shown.stderr
    as_json = run_percept(gateway, "detect", "face", str(videos["cut-face.avi"]), "--json")
    (item,) = json.loads(as_json.stdout)
    check_partial(item["result"]["summary"], item["result"]["frames"], "cut-face.avi")
    intact = run_percept(gateway, "detect", "face", str(videos["face.avi"]))
    assert intact.returncode == 0 and "partial" not in intact.stderr
