"""The face service proven on real models, real images and real videos."""

from __future__ import annotations

import asyncio
import io
import threading

import face_recognition
import grpc
import numpy as np
import psutil
import pytest
from percept.common.v1 import image_pb2, video_pb2
from percept.face.v1 import face_service_pb2 as pb
from percept.face.v1 import face_service_pb2_grpc
from PIL import Image

from harness.faces import FACE_PATCH
from harness.videos import moving_patch_video, read_frames
from tests.conftest import encode
from tests.integration.conftest import FACE_MAX_MESSAGE_BYTES
from tests.support import rpc_error

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stub(face_server):
    with grpc.insecure_channel(face_server.address) as channel:
        yield face_service_pb2_grpc.FaceServiceStub(channel)


def detect(stub, content: bytes, **options) -> pb.DetectFacesResponse:
    return stub.DetectFaces(
        pb.DetectFacesRequest(
            image=image_pb2.Image(content=content), options=pb.FaceOptions(**options)
        ),
        timeout=60,
    )


def css(response_faces) -> list[tuple[int, int, int, int]]:
    """Boxes as face_recognition's (top, right, bottom, left)."""
    return [
        (int(f.box.top), int(f.box.right), int(f.box.bottom), int(f.box.left))
        for f in response_faces
    ]


def load(content: bytes) -> np.ndarray:
    return face_recognition.load_image_file(io.BytesIO(content))


# --- single images: the service equals face_recognition called directly ----


@pytest.mark.parametrize("name", ["zidane", "bus", "astronaut"])
def test_boxes_equal_direct_face_recognition(stub, name, zidane_bytes, bus_bytes, astronaut):
    content = {"zidane": zidane_bytes, "bus": bus_bytes, "astronaut": encode(astronaut)}[name]
    image = load(content)
    expected = face_recognition.face_locations(image)
    response = detect(stub, content)
    assert expected, "the test image must contain faces"
    assert css(response.faces) == expected
    assert (response.image_width, response.image_height) == (image.shape[1], image.shape[0])


def test_landmarks_and_encodings_equal_direct(stub, zidane_bytes):
    image = load(zidane_bytes)
    locations = face_recognition.face_locations(image)
    response = detect(stub, zidane_bytes, return_landmarks=True, return_encodings=True)
    expected_marks = face_recognition.face_landmarks(image, locations)
    expected_enc = face_recognition.face_encodings(image, locations)
    assert len(response.faces) == len(locations)
    for face, marks, enc in zip(response.faces, expected_marks, expected_enc, strict=True):
        assert [(p.x, p.y) for p in face.landmarks.chin] == [
            tuple(map(float, p)) for p in marks["chin"]
        ]
        assert [(p.x, p.y) for p in face.landmarks.bottom_lip] == [
            tuple(map(float, p)) for p in marks["bottom_lip"]
        ]
        assert len(face.encoding) == 128
        np.testing.assert_allclose(face.encoding, enc, atol=1e-5)


def test_landmarks_and_encodings_only_when_asked(stub, zidane_bytes):
    face = detect(stub, zidane_bytes).faces[0]
    assert not face.HasField("landmarks")
    assert len(face.encoding) == 0


def test_detection_on_downscaled_copy_reports_source_pixels(stub, zidane_bytes):
    full = detect(stub, zidane_bytes).faces[0].box
    small = detect(stub, zidane_bytes, detection_max_side=640, upsample=2).faces[0].box
    # Same face, same coordinate system (zidane.jpg is 1280 wide, detection ran at 640).
    inter_w = min(full.right, small.right) - max(full.left, small.left)
    inter_h = min(full.bottom, small.bottom) - max(full.top, small.top)
    area = lambda b: (b.right - b.left) * (b.bottom - b.top)  # noqa: E731
    iou = inter_w * inter_h / (area(full) + area(small) - inter_w * inter_h)
    assert iou > 0.6, (full, small)


def test_cnn_detector_is_selectable(stub, astronaut):
    small = np.ascontiguousarray(astronaut[FACE_PATCH])
    expected = face_recognition.face_locations(small, model="cnn")
    response = detect(stub, encode(small), detector=pb.DETECTOR_CNN)
    assert expected and css(response.faces) == expected


# --- comparison ----------------------------------------------------------------


def test_same_face_matches_and_different_faces_do_not(stub, astronaut, zidane_bytes):
    head = astronaut[FACE_PATCH]
    shifted = np.full((300, 320, 3), 128, np.uint8)
    shifted[60:230, 100:260] = head  # the same face elsewhere, on another background
    response = stub.CompareFaces(
        pb.CompareFacesRequest(
            probe=image_pb2.Image(content=encode(shifted)),
            reference_image=image_pb2.Image(content=encode(astronaut)),
        ),
        timeout=60,
    )
    assert len(response.probe_faces) == 1 and len(response.probe_faces[0].encoding) == 128
    same = [
        m for m in response.matches if css(response.reference_faces)[m.reference_index][0] < 200
    ]
    assert len(same) == 1 and same[0].match and same[0].distance < 0.4
    assert response.tolerance == pytest.approx(0.6)

    other = stub.CompareFaces(
        pb.CompareFacesRequest(
            probe=image_pb2.Image(content=zidane_bytes),
            reference_encodings=pb.FaceEncodingList(
                encodings=[pb.FaceEncoding(values=response.probe_faces[0].encoding)]
            ),
            tolerance=0.6,
        ),
        timeout=60,
    )
    assert len(other.matches) == 1
    assert not other.matches[0].match and other.matches[0].distance > 0.6


def test_compare_rejects_bad_encodings_and_tolerance(stub, zidane_bytes):
    probe = image_pb2.Image(content=zidane_bytes)
    err = rpc_error(
        stub.CompareFaces,
        pb.CompareFacesRequest(
            probe=probe,
            reference_encodings=pb.FaceEncodingList(encodings=[pb.FaceEncoding(values=[0.1] * 5)]),
        ),
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "128" in err.details()
    err = rpc_error(
        stub.CompareFaces,
        pb.CompareFacesRequest(probe=probe, reference_image=probe, tolerance=1.5),
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "tolerance" in err.details()


# --- bad input: clear errors, and the server keeps serving ------------------------


def test_bad_images_get_invalid_argument_and_no_worker_dies(stub, face_server, zidane_bytes):
    server = psutil.Process(face_server.proc.pid)
    children_before = sorted(p.pid for p in server.children(recursive=True))
    gif = io.BytesIO()
    Image.new("RGB", (32, 32)).save(gif, format="GIF")
    bomb = io.BytesIO()
    Image.new("1", (6000, 6000)).save(bomb, format="PNG")  # 36 Mpx, a few kB
    cases = {
        b"": "empty",
        b"hello, not an image": "not a recognised image",
        zidane_bytes[: len(zidane_bytes) // 2]: "truncated",
        gif.getvalue(): "unsupported image format GIF",
        bomb.getvalue(): "over the limit",
    }
    for content, expected in cases.items():
        err = rpc_error(detect, stub, content)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (expected, err)
        assert expected in err.details()
        assert "JPEG" in err.details() or "pixels" in err.details() or "corrupt" in err.details()

    err = rpc_error(detect, stub, zidane_bytes, upsample=9)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "upsample" in err.details()
    err = rpc_error(detect, stub, zidane_bytes, detector=42)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "DETECTOR_HOG" in err.details()

    assert len(detect(stub, zidane_bytes).faces) == 1  # still serving
    assert sorted(p.pid for p in server.children(recursive=True)) == children_before


def test_unspecified_detector_means_hog(stub, zidane_bytes):
    assert css(detect(stub, zidane_bytes, detector=pb.DETECTOR_UNSPECIFIED).faces) == css(
        detect(stub, zidane_bytes, detector=pb.DETECTOR_HOG).faces
    )


def test_oversized_message_is_resource_exhausted(stub, zidane_bytes):
    err = rpc_error(detect, stub, b"\xff" * (FACE_MAX_MESSAGE_BYTES + 1024))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(detect(stub, zidane_bytes).faces) == 1


# --- videos -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def face_video(video_dir, astronaut):
    path = video_dir / "moving_face.avi"
    patch = np.ascontiguousarray(astronaut[FACE_PATCH])
    offsets = moving_patch_video(path, patch, n_frames=24)
    (top, right, bottom, left) = face_recognition.face_locations(patch)[0]
    return path, offsets, (left, top, right, bottom)


def video_request(**kwargs) -> pb.DetectFacesInVideoRequest:
    return pb.DetectFacesInVideoRequest(**kwargs)


def test_video_faces_follow_the_known_path(stub, face_video):
    path, offsets, (left, top, right, bottom) = face_video
    frames = read_frames(path)
    responses = list(
        stub.DetectFacesInVideo(
            video_request(video=video_pb2.VideoSource(content=path.read_bytes())), timeout=120
        )
    )
    assert [r.frame_index for r in responses] == list(range(len(offsets)))
    assert all(r.expected_frames == len(offsets) for r in responses)
    assert responses[1].timestamp == pytest.approx(0.1, abs=1e-3)
    for response, (dx, dy), frame in zip(responses, offsets, frames, strict=True):
        assert len(response.faces) == 1, response.frame_index
        box = response.faces[0].box
        # The face centre follows the path (HOG's window grid moves boxes by a few px)...
        assert abs((box.left + box.right) / 2 - (dx + (left + right) / 2)) <= 10
        assert abs((box.top + box.bottom) / 2 - (dy + (top + bottom) / 2)) <= 10
        # ...and equals face_recognition run directly on the same decoded frame.
        assert css(response.faces) == face_recognition.face_locations(frame)


def test_video_by_uri_with_stride_and_max_frames(stub, face_video):
    path, offsets, _ = face_video
    responses = list(
        stub.DetectFacesInVideo(
            video_request(video=video_pb2.VideoSource(uri=str(path)), frame_stride=5, max_frames=3),
            timeout=120,
        )
    )
    assert [r.frame_index for r in responses] == [0, 5, 10]
    assert [r.expected_frames for r in responses] == [3, 3, 3]
    assert all(len(r.faces) == 1 for r in responses)
    file_uri = list(
        stub.DetectFacesInVideo(
            video_request(video=video_pb2.VideoSource(uri=f"file://{path}"), frame_stride=10),
            timeout=120,
        )
    )
    assert [r.frame_index for r in file_uri] == [0, 10, 20]


def test_video_sources_outside_the_allow_list_are_denied(stub, tmp_path):
    for uri in (
        "/etc/passwd",
        "rtsp://127.0.0.1:8554/cam",
        "http://127.0.0.1/video.mp4",
        "file:///etc/hosts",
    ):
        err = rpc_error(
            stub.DetectFacesInVideo, video_request(video=video_pb2.VideoSource(uri=uri)), timeout=30
        )
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, uri
        assert "allow" in err.details()


def test_unopenable_videos_are_invalid_argument(stub, face_video):
    path, _, _ = face_video
    cases = [
        video_pb2.VideoSource(content=b"this is not a video at all" * 100),
        video_pb2.VideoSource(uri=str(path.parent / "missing.mp4")),
        video_pb2.VideoSource(),
    ]
    for source in cases:
        err = rpc_error(stub.DetectFacesInVideo, video_request(video=source), timeout=30)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, source
        assert "video" in err.details()


def test_video_results_stream_before_the_video_is_done_and_cancel_stops_work(
    face_server, stub, video_dir, astronaut
):
    path = video_dir / "long_face.avi"
    n_frames = 80
    moving_patch_video(
        path, np.ascontiguousarray(astronaut[FACE_PATCH]), n_frames=n_frames, step=(4, 2)
    )
    metric = "percept_frames_processed_total"
    before = face_server.metric(metric, method="DetectFacesInVideo")
    call = stub.DetectFacesInVideo(
        video_request(video=video_pb2.VideoSource(uri=str(path))), timeout=300
    )
    first = next(call)
    processed_at_first = face_server.metric(metric, method="DetectFacesInVideo") - before
    assert first.frame_index == 0 and len(first.faces) == 1
    # The first result arrived while most of the video had not been processed.
    assert processed_at_first < n_frames / 2
    next(call)
    call.cancel()
    with pytest.raises(grpc.RpcError) as info:
        list(call)
    assert info.value.code() == grpc.StatusCode.CANCELLED
    # The server stops: at most the in-flight window (4) and queued frames finish after the cancel.
    deadline_processed = None
    for _ in range(20):
        threading.Event().wait(0.5)
        now = face_server.metric(metric, method="DetectFacesInVideo") - before
        if now == deadline_processed:
            break
        deadline_processed = now
    assert deadline_processed <= 2 + 2 * 4 + 2, deadline_processed
    in_flight = "percept_grpc_in_flight"
    for _ in range(50):
        if (
            face_server.metric(in_flight, method="/percept.face.v1.FaceService/DetectFacesInVideo")
            == 0
        ):
            break
        threading.Event().wait(0.1)
    assert (
        face_server.metric(in_flight, method="/percept.face.v1.FaceService/DetectFacesInVideo") == 0
    )
    assert (
        face_server.metric(
            "percept_grpc_requests_total",
            method="/percept.face.v1.FaceService/DetectFacesInVideo",
            code="CANCELLED",
        )
        >= 1
    )


# --- live frames, bidirectional -----------------------------------------------------


def test_stream_answers_each_frame_in_order_while_the_client_is_sending(face_server, face_video):
    path, offsets, (left, top, right, bottom) = face_video
    frames = read_frames(path)[:8]

    async def lockstep() -> list[pb.StreamFacesResponse]:
        async with grpc.aio.insecure_channel(face_server.address) as channel:
            call = face_service_pb2_grpc.FaceServiceStub(channel).StreamFaces(timeout=120)
            got = []
            for frame in frames:
                # The next frame is sent only after the previous answer came back:
                # a server that answered at the end of the stream would hang here.
                await call.write(
                    pb.StreamFacesRequest(image=image_pb2.Image(content=encode(frame, ".jpg")))
                )
                got.append(await asyncio.wait_for(call.read(), 60))
            await call.done_writing()
            assert await call.read() == grpc.aio.EOF
            return got

    responses = asyncio.run(lockstep())
    assert [r.frame_index for r in responses] == list(range(len(frames)))
    for response, (dx, _dy) in zip(responses, offsets, strict=False):
        assert len(response.faces) == 1
        box = response.faces[0].box
        assert abs((box.left + box.right) / 2 - (dx + (left + right) / 2)) <= 10


def test_stream_pipelined_frames_come_back_in_order(stub, face_video, zidane_bytes):
    path, _, _ = face_video
    frames = [encode(f, ".jpg") for f in read_frames(path)[:6]] + [zidane_bytes] * 2
    requests = (pb.StreamFacesRequest(image=image_pb2.Image(content=c)) for c in frames)
    responses = list(stub.StreamFaces(requests, timeout=120))
    assert [r.frame_index for r in responses] == list(range(len(frames)))
    assert [(r.image_width, r.image_height) for r in responses[-2:]] == [(1280, 720)] * 2


def test_stream_bad_frame_names_the_frame(stub, zidane_bytes):
    requests = iter(
        [pb.StreamFacesRequest(image=image_pb2.Image(content=c)) for c in (zidane_bytes, b"junk")]
    )
    err = rpc_error(stub.StreamFaces, requests, timeout=60)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "frame 1" in err.details()
