"""Tracked videos and streams over gRPC, on real servers: objects with known
identities (the demo shapes model) scored with motmetrics, two enrolled people
crossing paths identified once per track, ids that never meet across streams,
tracker options checked against the proto's rules."""

from __future__ import annotations

import asyncio

import cv2
import grpc
import motmetrics
import pytest
from percept.common.v1 import image_pb2, video_pb2
from percept.face.v1 import face_service_pb2 as fpb
from percept.face.v1 import face_service_pb2_grpc as face_grpc
from percept.object.v1 import object_service_pb2 as pb
from percept.object.v1 import object_service_pb2_grpc

from harness import faces
from harness.videos import read_frames, tracking_shapes_video
from tests.conftest import encode
from tests.support import rpc_error
from tests.tracking_support import accumulate, score

pytestmark = pytest.mark.slow

SEEDS = (1, 2, 3)
COLLECTION = "tracking-people"
PEOPLE = ("astronaut", "grace-hopper")


def ltrb(box) -> tuple[float, float, float, float]:
    return (box.left, box.top, box.right, box.bottom)


@pytest.fixture(scope="module")
def stub(object_server):
    with grpc.insecure_channel(object_server.address) as channel:
        yield object_service_pb2_grpc.ObjectServiceStub(channel)


@pytest.fixture(scope="module")
def clips(video_dir):
    out = {}
    for seed in SEEDS:
        path = video_dir / f"tracking-{seed}.avi"
        out[seed] = (path, tracking_shapes_video(path, seed))
    return out


def track_video(stub, path, **request) -> list[pb.DetectObjectsInVideoResponse]:
    return list(
        stub.DetectObjectsInVideo(
            pb.DetectObjectsInVideoRequest(
                video=video_pb2.VideoSource(content=path.read_bytes()), **request
            ),
            timeout=300,
        )
    )


@pytest.fixture(scope="module")
def tracked(stub, clips):
    return {seed: track_video(stub, path) for seed, (path, _) in clips.items()}


def test_objects_keep_their_identity_through_crossings_and_absences(clips, tracked):
    acc = motmetrics.MOTAccumulator(auto_id=True)
    for seed, (_, truth) in clips.items():
        for response, shapes in zip(tracked[seed], truth, strict=True):
            dets = [d for d in response.detections if d.track_id]
            accumulate(
                acc,
                [seed * 10 + ident for ident, _ in shapes],
                [(s.left, s.top, s.right, s.bottom) for _, s in shapes],
                [d.track_id for d in dets],
                [ltrb(d.box) for d in dets],
            )
    result = score(acc)
    assert result["tracks"] == 4 * len(SEEDS)
    assert result["idf1"] >= 0.95, result
    assert result["switches"] <= max(1, result["tracks"] // 20), result


def test_the_summary_lists_each_object_once_with_its_class_and_best_box(clips, tracked):
    for seed, (_, truth) in clips.items():
        responses = tracked[seed]
        summary = responses[-1].summary
        assert all(not r.HasField("summary") for r in responses[:-1])
        assert summary.processed_frames == len(truth)
        assert sorted(t.label for t in summary.tracks) == [
            "circle", "circle", "square", "triangle",
        ]  # fmt: skip
        triangle = next(t for t in summary.tracks if t.label == "triangle")
        # it left the frame and came back within the keep time: one track
        assert triangle.first_frame_index == 0 and triangle.last_frame_index == len(truth) - 1
        assert triangle.frames_seen < len(truth)
        assert triangle.last_timestamp == pytest.approx((len(truth) - 1) / 10, abs=1e-3)
        for track in summary.tracks:
            best = responses[track.best_frame_index]
            (det,) = [d for d in best.detections if d.track_id == track.track_id]
            assert det.confidence == pytest.approx(track.best_score)
            assert ltrb(det.box) == pytest.approx(ltrb(track.best_box))
    ids = [{t.track_id for t in tracked[s][-1].summary.tracks} for s in SEEDS]
    assert not (ids[0] & ids[1] or ids[1] & ids[2] or ids[0] & ids[2])  # calls never share


def test_tracking_off_and_botsort(stub, clips):
    path, truth = clips[1]
    off = track_video(
        stub, path, tracker=video_pb2.TrackerOptions(tracker=video_pb2.TRACKER_TYPE_OFF)
    )
    assert all(d.track_id == 0 for r in off for d in r.detections)
    assert sum(len(r.detections) for r in off) > 0
    assert len(off[-1].summary.tracks) == 0 and off[-1].summary.processed_frames == len(truth)
    bot = track_video(
        stub, path, tracker=video_pb2.TrackerOptions(tracker=video_pb2.TRACKER_TYPE_BOTSORT)
    )
    assert len(bot[-1].summary.tracks) == 4


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"lost_track_frames": 20000},
            "tracker.lost_track_frames is 20000: it must be in [1, 10000]",
        ),
        ({"match_threshold": 0}, "tracker.match_threshold is 0: it must be in (0, 1]"),
        ({"high_threshold": 1.5}, "tracker.high_threshold is 1.5: it must be in [0, 1]"),
        ({"low_threshold": 0.5, "high_threshold": 0.3}, "tracker.low_threshold is 0.5"),
        ({"tracker": 9}, "tracker.tracker 9 is unknown"),
    ],
)
def test_bad_tracker_options_are_invalid_argument_naming_the_field(stub, clips, options, message):
    path, _ = clips[1]
    err = rpc_error(
        stub.DetectObjectsInVideo,
        pb.DetectObjectsInVideoRequest(
            video=video_pb2.VideoSource(content=path.read_bytes()),
            tracker=video_pb2.TrackerOptions(**options),
        ),
        timeout=60,
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.details()
    assert len(track_video(stub, path, max_frames=2)) == 2  # and it keeps serving


def test_two_streams_interleaved_on_one_replica_never_share_ids(object_server, clips):
    """Two streams of the same clip, frame by frame in turn, on one replica; the
    second's frames are resized half-way through (a camera that changes size)."""
    frames = read_frames(clips[1][0])[:16]

    async def run():
        async with grpc.aio.insecure_channel(object_server.address) as channel:
            stub = object_service_pb2_grpc.ObjectServiceStub(channel)
            a, b = stub.StreamObjects(timeout=120), stub.StreamObjects(timeout=120)
            got_a, got_b = [], []
            for i, frame in enumerate(frames):
                last = i == len(frames) - 1
                await a.write(
                    pb.StreamObjectsRequest(image=image_pb2.Image(content=encode(frame, ".jpg")),
                                            summarize=last)
                )  # fmt: skip
                got_a.append(await asyncio.wait_for(a.read(), 60))
                if i >= len(frames) // 2:
                    frame = cv2.resize(frame, (480, 360), interpolation=cv2.INTER_AREA)
                await b.write(
                    pb.StreamObjectsRequest(image=image_pb2.Image(content=encode(frame, ".jpg")),
                                            summarize=last)
                )  # fmt: skip
                got_b.append(await asyncio.wait_for(b.read(), 60))
            await a.done_writing()
            await b.done_writing()
            return got_a, got_b

    got_a, got_b = asyncio.run(run())
    ids_a = {d.track_id for r in got_a for d in r.detections if d.track_id}
    ids_b = {d.track_id for r in got_b for d in r.detections if d.track_id}
    assert len(ids_a) == 4 and not ids_a & ids_b
    assert got_b[-1].image_width == 480 and len(ids_b) >= 4
    # each stream's circles keep their ids through the resize
    assert {t.track_id for t in got_a[-1].summary.tracks} == ids_a
    assert got_a[-1].summary.processed_frames == len(frames)
    assert all(not r.HasField("summary") for r in got_a[:-1])


# --- faces: two enrolled people who cross paths -----------------------------------


@pytest.fixture(scope="module")
def face_stub(face_server):
    with grpc.insecure_channel(face_server.address) as channel:
        yield face_grpc.FaceServiceStub(channel)


@pytest.fixture(scope="module")
def people(face_stub):
    face_stub.CreateCollection(fpb.CreateCollectionRequest(collection_id=COLLECTION))
    for person in PEOPLE:
        face_stub.EnrollFaces(
            fpb.EnrollFacesRequest(
                collection_id=COLLECTION,
                image=image_pb2.Image(content=faces.encode(faces.photos()[person].rgb)),
                subject=person,
            ),
            timeout=120,
        )
    yield
    face_stub.DeleteCollection(fpb.DeleteCollectionRequest(collection_id=COLLECTION))


@pytest.fixture(scope="module")
def crossing(video_dir):
    path = video_dir / "crossing-heads.avi"
    truth = faces.crossing_heads_video(path, PEOPLE, n_frames=20, away=range(12, 15))
    return path, truth


def identify_video(face_stub, path, **request) -> list[fpb.DetectFacesInVideoResponse]:
    return list(
        face_stub.DetectFacesInVideo(
            fpb.DetectFacesInVideoRequest(
                video=video_pb2.VideoSource(content=path.read_bytes()),
                collection_id=COLLECTION,
                **request,
            ),
            timeout=600,
        )
    )


def test_two_people_crossing_are_two_tracks_each_named_once(face_stub, people, crossing):
    path, truth = crossing
    responses = identify_video(face_stub, path)
    seen: dict[int, set[str]] = {}
    for response, heads in zip(responses, truth, strict=True):
        for face in response.faces:
            if not face.track_id:
                continue
            assert face.matches, (response.frame_index, face)  # every tracked face is named
            seen.setdefault(face.track_id, set()).add(face.matches[0].subject)
            centre = ((face.box.left + face.box.right) / 2, (face.box.top + face.box.bottom) / 2)
            where = [h.person for h in heads if h.contains(centre)]
            if len(where) == 1:
                assert face.matches[0].subject == where[0], response.frame_index
    # exactly two tracks, one name each, no change across frames
    assert len(seen) == 2 and sorted(min(s) for s in seen.values()) == sorted(PEOPLE)
    assert all(len(s) == 1 for s in seen.values())
    summary = responses[-1].summary
    assert sorted(t.subject for t in summary.tracks) == sorted(PEOPLE)
    grace = next(t for t in summary.tracks if t.subject == "grace-hopper")
    # she left for three frames and came back within the keep time: the same track
    assert grace.first_frame_index == 0 and grace.last_frame_index == len(truth) - 1
    assert grace.frames_seen <= len(truth) - 3
    assert all(t.face_id and 0 <= t.distance <= 0.6 for t in summary.tracks)
    # searched once per track (and again only for a clearly better face)
    frames_with_faces = sum(len(r.faces) for r in responses)
    assert summary.gallery_searches <= 6 < frames_with_faces


def test_per_frame_identification_when_tracking_is_off(face_stub, people, crossing):
    path, truth = crossing
    responses = identify_video(
        face_stub, path, max_frames=6,
        tracker=video_pb2.TrackerOptions(tracker=video_pb2.TRACKER_TYPE_OFF),
    )  # fmt: skip
    assert all(f.track_id == 0 and f.matches for r in responses for f in r.faces)
    assert responses[-1].summary.gallery_searches == sum(len(r.faces) for r in responses)


def test_stream_faces_carry_track_ids_and_identities(face_server, face_stub, people, crossing):
    path, _ = crossing
    frames = read_frames(path)[:5]

    def requests():
        for i, frame in enumerate(frames):
            request = fpb.StreamFacesRequest(
                image=image_pb2.Image(content=faces.encode(frame)),
                collection_id=COLLECTION if i == 0 else "",
                summarize=i == len(frames) - 1,
            )
            if i == 0:  # the first message's options apply to every frame
                request.options.return_encodings = True
            yield request

    responses = list(face_stub.StreamFaces(requests(), timeout=300))
    ids = {f.track_id for r in responses for f in r.faces}
    assert len(ids) == 2 and 0 not in ids
    assert all(len(f.encoding) == 128 for r in responses for f in r.faces)
    assert {t.subject for t in responses[-1].summary.tracks} == set(PEOPLE)
    assert responses[-1].summary.gallery_searches <= 4
