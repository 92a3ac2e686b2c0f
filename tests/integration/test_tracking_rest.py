"""Tracked videos over REST, SSE and the SDKs: the ids the service gives arrive
unchanged, the summary's tracks are in the task's result, and tracker options
are REST parameters read from the proto (ranges and all)."""

from __future__ import annotations

import json

import grpc
import numpy as np
import percept
import pytest
from percept.common.v1 import video_pb2
from percept.object.v1 import object_service_pb2 as pb
from percept.object.v1 import object_service_pb2_grpc

from harness.videos import tracking_shapes_video
from tests.conftest import encode
from tests.support import run_percept, submit, task_events, wait_done

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def http(gateway):
    with gateway.client(timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("tracking-rest") / "shapes.avi"
    tracking_shapes_video(path, seed=2, n_frames=24)
    return path.read_bytes()


def _key(box) -> tuple:
    return tuple(round(box[k]) for k in ("left", "top", "right", "bottom"))


def _grouping(frames) -> dict[tuple, int]:
    """(frame, rounded box) -> track id, for every tracked detection."""
    return {
        (f["frame_index"], _key(d["box"])): d["track_id"]
        for f in frames
        for d in f["detections"]
        if d.get("track_id")
    }


def test_rest_sse_and_sdk_carry_the_ids_grpc_gives(gateway, object_server, http, clip):
    response = submit(http, "/api/detect/object/video", clip, "shapes.avi", "video/x-msvideo")
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    sse_frames = [data for name, data in task_events(gateway, task_id) if name == "frame"]
    task = wait_done(http, task_id)
    assert task["status"] == "succeeded"
    result = task["result"]
    rest = _grouping(result["frames"])
    assert _grouping(sse_frames) == rest  # SSE frames say what the result says
    tracks = result["summary"]["tracks"]
    assert {t["track_id"] for t in tracks} == set(rest.values()) and len(tracks) == 4
    assert sorted(t["label"] for t in tracks) == ["circle", "circle", "square", "triangle"]
    assert all(t["frames_seen"] >= 1 and t["best_box"]["right"] > 0 for t in tracks)

    # The same clip straight over gRPC: the same tracks (ids are per call, so
    # they map one to one), the same boxes in each.
    with grpc.insecure_channel(object_server.address) as channel:
        stub = object_service_pb2_grpc.ObjectServiceStub(channel)
        direct = list(
            stub.DetectObjectsInVideo(
                pb.DetectObjectsInVideoRequest(video=video_pb2.VideoSource(content=clip)),
                timeout=120,
            )
        )
    grpc_ids = {
        (r.frame_index, _key({k: getattr(d.box, k) for k in ("left", "top", "right", "bottom")})):
        d.track_id
        for r in direct
        for d in r.detections
        if d.track_id
    }  # fmt: skip
    assert grpc_ids.keys() == rest.keys()
    mapping = {}
    for key, grpc_id in grpc_ids.items():
        assert mapping.setdefault(grpc_id, rest[key]) == rest[key]
    assert len(set(mapping.values())) == len(mapping) == 4
    assert not set(mapping) & set(mapping.values())  # another call: other ids

    # The SDK reads the same ids and tracks.
    with percept.Client(gateway.url, api_key=gateway.api_key) as client:
        got = client.task(task_id).result
    assert {
        (f.frame_index, _key(d.box.to_json())): d.track_id
        for f in got.frames
        for d in f.detections
        if d.track_id
    } == rest
    assert [t.track_id for t in got.summary.tracks] == [t["track_id"] for t in tracks]
    assert got.summary.tracks[0].to_json()["best_box"] == tracks[0]["best_box"]


def test_tracker_options_are_rest_parameters(http, clip):
    response = submit(
        http, "/api/detect/object/video", clip, "shapes.avi", "video/x-msvideo",
        tracker="off", max_frames="3",
    )  # fmt: skip
    assert response.status_code == 202, response.text
    task = wait_done(http, response.json()["task_id"])
    assert task["options"]["tracker"] == "off"
    frames = task["result"]["frames"]
    assert len(frames) == 3 and all("track_id" not in d for f in frames for d in f["detections"])
    assert task["result"]["summary"]["tracks"] == []


@pytest.mark.parametrize(
    "params, field",
    [
        ({"lost_track_frames": "20000"}, "lost_track_frames"),
        ({"match_threshold": "0"}, "match_threshold"),
        ({"tracker": "kalman"}, "tracker"),
    ],
)
def test_bad_tracker_options_are_422_naming_the_field(http, clip, params, field):
    for path in ("/api/detect/object/video", "/api/detect/face/video"):
        response = submit(http, path, clip, "shapes.avi", "video/x-msvideo", **params)
        assert response.status_code == 422, response.text
        assert field in response.text


def test_tracker_options_are_not_taken_on_images(http):
    png = encode(np.full((64, 64, 3), 128, np.uint8), ".png")
    response = submit(http, "/api/detect/object/image", png, "a.png", "image/png", tracker="off")
    assert response.status_code == 422
    assert "tracker" in response.text


# --- the command line: the tracks table, and the whole summary with --json -----------

CLI_COLLECTION = "tracking-cli"


def test_cli_prints_the_tracks_table_and_json_the_summary(gateway, http, clip, tmp_path):
    video = tmp_path / "shapes.avi"
    video.write_bytes(clip)
    shown = run_percept(gateway, "detect", "object", str(video))
    assert shown.returncode == 0, shown.stderr
    assert "4 tracks" in shown.stdout
    table = shown.stdout[shown.stdout.index("4 tracks") :]
    assert (table.count("circle"), table.count("square"), table.count("triangle")) == (2, 1, 1)
    assert "first frame" in table and "best frame" in table
    as_json = run_percept(gateway, "detect", "object", str(video), "--json")
    (item,) = json.loads(as_json.stdout)
    tracks = item["result"]["summary"]["tracks"]
    assert sorted(t["label"] for t in tracks) == ["circle", "circle", "square", "triangle"]
    off = run_percept(gateway, "detect", "object", str(video), "--tracker", "off", "--json")
    (item,) = json.loads(off.stdout)
    assert item["result"]["summary"]["tracks"] == []


def test_cli_identify_names_each_track(gateway, http, tmp_path):
    from harness import faces

    created = http.post("/api/collections", json={"collection_id": CLI_COLLECTION})
    assert created.status_code == 201, created.text
    try:
        for person in ("astronaut", "grace-hopper"):
            enrolled = http.post(
                f"/api/collections/{CLI_COLLECTION}/faces",
                files={"file": ("p.jpg", faces.encode(faces.photos()[person].rgb), "image/jpeg")},
                data={"subject": person},
            )
            assert enrolled.status_code == 201, enrolled.text
        video = tmp_path / "crossing.avi"
        faces.crossing_heads_video(video, ("astronaut", "grace-hopper"), n_frames=20)
        shown = run_percept(gateway, "identify", str(video), "--collection", CLI_COLLECTION)
        assert shown.returncode == 0, shown.stderr
        table = shown.stdout[shown.stdout.index("2 tracks") :]
        assert "astronaut (0." in table and "grace-hopper (0." in table
        as_json = run_percept(
            gateway, "identify", str(video), "--collection", CLI_COLLECTION, "--json"
        )
        (item,) = json.loads(as_json.stdout)
        summary = item["result"]["summary"]
        assert sorted(t["subject"] for t in summary["tracks"]) == ["astronaut", "grace-hopper"]
        assert 2 <= summary["gallery_searches"] <= 6  # of 40 faces: once per track
    finally:
        http.delete(f"/api/collections/{CLI_COLLECTION}")
