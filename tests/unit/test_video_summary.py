"""A video that ends before its container said it would is told apart from an
intact one: the reader's last frame carries a summary (partial or not), and
the gateway and SDK read the same summary from the proto and the JSON."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from percept.face.v1 import face_service_pb2 as face_pb
from percept.transport._wire import to_json
from percept.types import FrameResult, Kind, Task, VideoResult

from gateway import results
from harness.videos import moving_patch_video, mp4_video, stretch_mp4, truncate
from percept_runtime.errors import InvalidInput
from percept_runtime.streaming import summary_message
from percept_runtime.video import VideoPolicy, VideoReader, VideoSummary


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """An intact 30-frame AVI and MP4, each cut at half, and the MP4 stretched."""
    root = tmp_path_factory.mktemp("clips")
    paths = {"avi": root / "v.avi", "mp4": root / "v.mp4"}
    moving_patch_video(paths["avi"], np.full((20, 20, 3), 200, np.uint8), 30, size=(96, 64))
    mp4_video(paths["mp4"], 30, size=(96, 64))
    for name in ("avi", "mp4"):
        paths[f"cut-{name}"] = root / f"cut.{name}"
        shutil.copy(paths[name], paths[f"cut-{name}"])
        truncate(paths[f"cut-{name}"], 0.5)
    paths["stretched"] = root / "stretched.mp4"
    shutil.copy(paths["mp4"], paths["stretched"])
    stretch_mp4(paths["stretched"], hours=10)
    return paths


def read(path, **kwargs):
    frames = list(VideoReader(content=path.read_bytes(), policy=VideoPolicy(), **kwargs))
    assert all(f.summary is None for f in frames[:-1]), "only the last frame carries it"
    return frames, frames[-1].summary


@pytest.mark.parametrize("name", ["avi", "mp4"])
def test_an_intact_video_is_not_partial(clips, name):
    frames, summary = read(clips[name])
    assert len(frames) == 30
    assert summary == VideoSummary(30, 30, 29)
    frames, summary = read(clips[name], frame_stride=4)
    assert [f.index for f in frames] == list(range(0, 30, 4))
    assert summary == VideoSummary(8, 8, 28)


@pytest.mark.parametrize("name", ["cut-avi", "cut-mp4"])
def test_a_cut_video_is_partial_with_its_last_good_frame(clips, name):
    frames, summary = read(clips[name])
    assert 5 < len(frames) < 30
    last = frames[-1].index
    assert summary.partial and (summary.expected_frames, summary.processed_frames) == (
        30,
        len(frames),
    )
    assert summary.last_frame_index == last == len(frames) - 1
    assert f"could not be decoded from frame {last + 1} on" in summary.reason
    assert f"the last frame processed is {last}" in summary.reason
    assert "declares 30 frames over 3.0 s" in summary.reason
    # sampled: the promise is 8 frames, fewer arrive
    frames, summary = read(clips[name], frame_stride=4)
    assert summary.partial and summary.expected_frames == 8 and summary.processed_frames < 8
    # max_frames stops before the break: everything asked for came, nothing partial
    frames, summary = read(clips[name], max_frames=5)
    assert len(frames) == 5 and summary == VideoSummary(5, 5, 4)


def test_stretched_timestamps_are_partial(clips):
    frames, summary = read(clips["stretched"])
    assert len(frames) == 1
    assert summary.partial and (summary.expected_frames, summary.processed_frames) == (30, 1)
    assert "30 frames over 10.0 h" in summary.reason


def test_a_video_cut_before_its_first_frame_is_refused(clips, tmp_path):
    path = tmp_path / "stub.avi"
    path.write_bytes(clips["avi"].read_bytes())
    truncate(path, 0.02)  # the header survives, no frame does
    with pytest.raises(InvalidInput):
        list(VideoReader(content=path.read_bytes(), policy=VideoPolicy()))


def test_summary_reads_the_same_from_proto_and_json(clips):
    frames, _ = read(clips["cut-mp4"])
    message = summary_message(frames[-1])
    assert summary_message(frames[0]) is None
    response = face_pb.DetectFacesInVideoResponse(
        frame_index=frames[-1].index, image_width=96, image_height=64, summary=message
    )
    # gateway: proto -> the task result's JSON
    as_json = results.video_summary(response.summary)
    assert as_json["partial"] is True and as_json["reason"] == message.reason
    # SDK: the gRPC frame and the REST task carry equal summaries
    from_grpc = FrameResult.from_json(to_json(response), Kind.FACE).summary
    task = Task.from_json(
        {
            "task_id": "t",
            "kind": "face_detection",
            "media": "video",
            "status": "succeeded",
            "result": {"frames": [], "summary": as_json},
        }
    )
    assert isinstance(task.result, VideoResult) and task.result.partial
    assert task.result.summary == from_grpc
    assert VideoResult.from_json(task.result.to_json(), Kind.FACE) == task.result
    # an older server's result without a summary still parses
    assert not VideoResult.from_json({"frames": []}, Kind.FACE).partial
    empty = to_json(face_pb.DetectFacesInVideoResponse())
    assert FrameResult.from_json(empty, Kind.FACE).summary is None
