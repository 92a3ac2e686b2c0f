"""The shared runtime's pieces, with small real inputs and no servers."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from harness.videos import moving_patch_video
from percept_runtime.errors import AccessDenied, InputTooLarge, InvalidInput
from percept_runtime.imaging import decode_image
from percept_runtime.settings import ServerSettings
from percept_runtime.status import status_for
from percept_runtime.streaming import FirstMessage, iterate_in_thread, ordered_map
from percept_runtime.video import VideoPolicy, VideoReader, resolve_uri


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions but carries almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )  # noqa: E731

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def test_decode_image_returns_rgb_pixels():
    buf = io.BytesIO()
    Image.new("RGB", (7, 5), (10, 20, 30)).save(buf, format="PNG")
    rgb = decode_image(buf.getvalue(), max_pixels=100)
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (10, 20, 30)


def test_decode_image_applies_exif_orientation():
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 10)).save(buf, format="JPEG", exif=exif)
    assert decode_image(buf.getvalue(), max_pixels=10_000).shape[:2] == (40, 10)


def test_pixel_limit_is_checked_before_decoding():
    # 100k x 100k would need 30 GB to decode: the header alone must be enough to refuse it.
    with pytest.raises(InvalidInput, match="100000x100000 = 10000000000 pixels, over the limit"):
        decode_image(png_header_only(100_000, 100_000), max_pixels=40_000_000)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"GIF89a", "unsupported image format GIF"),
        (b"\x00\x00\x00\x18ftypheic", "unsupported image format HEIF"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", "a video \\(MP4\\), not an image"),
        (b"RIFF\x00\x10\x00\x00AVI LIST", "a video \\(AVI\\), not an image"),
        (b"\x00\x00\x00\x18ftypmiaf", "unsupported image format HEIF"),  # a still, not a video
        (b"\x89PNG\r\n\x1a\n", "looks like PNG but its header is broken"),
        (b"<html>not an image</html>", "not a recognised image"),
    ],
)
def test_decode_image_errors_say_what_is_accepted(data, message):
    with pytest.raises(InvalidInput, match=message) as info:
        decode_image(data, max_pixels=1000)
    assert "JPEG" in info.value.message


def test_error_table():
    assert status_for(InvalidInput("x")) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_for(InputTooLarge("x")) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status_for(AccessDenied("x")) == grpc.StatusCode.PERMISSION_DENIED
    assert status_for(ValueError("x")) == grpc.StatusCode.INTERNAL


def test_errors_survive_pickling_across_processes():
    import pickle

    err = pickle.loads(pickle.dumps(InvalidInput("bad frame")))
    assert isinstance(err, InvalidInput) and err.message == "bad frame"


def test_uri_policy(tmp_path):
    allowed = tmp_path / "videos"
    allowed.mkdir()
    policy = VideoPolicy(allowed_dirs=(allowed,), allowed_schemes=("rtsp",))
    assert resolve_uri(str(allowed / "a.mp4"), policy) == str(allowed / "a.mp4")
    assert resolve_uri(f"file://{allowed}/a.mp4", policy) == str(allowed / "a.mp4")
    assert resolve_uri("rtsp://cam/1", policy) == "rtsp://cam/1"
    for uri in (str(allowed / ".." / "escape.mp4"), "/etc/passwd", "http://x/v.mp4"):
        with pytest.raises(AccessDenied):
            resolve_uri(uri, policy)
    with pytest.raises(InvalidInput):
        resolve_uri("relative/path.mp4", policy)


def test_video_reader_stride_max_frames_and_timestamps(tmp_path):
    path = tmp_path / "v.avi"
    moving_patch_video(
        path, np.full((20, 20, 3), 200, np.uint8), n_frames=12, size=(64, 48), fps=4.0
    )
    reader = VideoReader(
        content=path.read_bytes(), policy=VideoPolicy(), frame_stride=3, max_frames=3
    )
    assert reader.expected_frames == 3 and (reader.width, reader.height) == (64, 48)
    frames = list(reader)
    assert [f.index for f in frames] == [0, 3, 6]
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.75, 1.5])
    assert frames[0].rgb.shape == (48, 64, 3)


def test_video_reader_rejects_garbage_and_big_frames(tmp_path):
    with pytest.raises(InvalidInput, match="could not be opened"):
        VideoReader(content=b"\x00" * 4096, policy=VideoPolicy())
    path = tmp_path / "v.avi"
    moving_patch_video(path, np.zeros((8, 8, 3), np.uint8), n_frames=2, size=(64, 48))
    with pytest.raises(InvalidInput, match="over the limit"):
        VideoReader(content=path.read_bytes(), policy=VideoPolicy(max_frame_pixels=1000))


def test_ordered_map_keeps_order_and_bounds_work():
    started: list[int] = []

    async def slow_for_small(i: int) -> int:
        started.append(i)
        await asyncio.sleep(0.01 * (5 - i % 5))
        return i * 10

    async def source():
        for i in range(20):
            yield i

    async def main():
        out = []
        async for value in ordered_map(source(), slow_for_small, window=3):
            out.append(value)
            if len(out) == 4:
                break
        await asyncio.sleep(0.05)
        return out

    assert asyncio.run(main()) == [0, 10, 20, 30]
    # Stopping early cancels the rest: at most the window (plus one being queued) started after.
    assert len(started) <= 4 + 3 + 1


def test_ordered_map_raises_errors_in_order():
    async def fn(i: int) -> int:
        if i == 2:
            raise InvalidInput("frame 2 is bad")
        return i

    async def source():
        for i in range(5):
            yield i

    async def main():
        out = []
        with pytest.raises(InvalidInput):
            async for value in ordered_map(source(), fn, window=4):
                out.append(value)
        return out

    assert asyncio.run(main()) == [0, 1]


def test_ordered_map_leaves_no_call_running_when_the_consumer_stops():
    """Each call started is either awaited or cancelled: none finishes (or fails,
    unretrieved) in the background after the stream ended."""
    finished: list[int] = []

    async def fn(i: int) -> int:
        if i == 1:
            raise InvalidInput("frame 1: the collection is gone")
        await asyncio.sleep(0.05 * (i + 1))  # later frames still running when 1 fails
        finished.append(i)
        return i

    async def source():
        for i in range(10):
            yield i

    async def main():
        with pytest.raises(InvalidInput):
            async for _ in ordered_map(source(), fn, window=2):
                pass
        await asyncio.sleep(0.6)  # time enough for any orphan to finish

    asyncio.run(main())
    assert finished == [0]


def test_first_message_state_is_made_once_and_closed_when_the_call_stops():
    """A live call's state (its tracker) comes from the first message, before
    that message is handed on, and is closed however the call ends."""
    made: list[str] = []

    class State:
        def __init__(self, first: str) -> None:
            made.append(first)
            self.closed = False

        def close(self) -> None:
            self.closed = True

    async def make(first: str) -> State:
        return State(first)

    async def requests():
        for r in ("a", "b", "c"):
            yield r

    async def main():
        seen = []
        with pytest.raises(InvalidInput), FirstMessage(requests(), make) as call:
            async for request in call.requests():
                seen.append((request, made[:]))
                if request == "b":
                    raise InvalidInput("frame 1: bad")
        return seen, call.state

    seen, state = asyncio.run(main())
    assert seen == [("a", ["a"]), ("b", ["a"])] and state.closed


def test_iterate_in_thread_closes_early():
    closed = []

    def frames():
        try:
            yield from range(100)
        finally:
            closed.append("generator")

    async def main():
        gen = iterate_in_thread(frames(), close=lambda: closed.append("close"))
        async for value in gen:
            if value == 2:
                break
        await gen.aclose()
        await asyncio.sleep(0.1)

    asyncio.run(main())
    assert closed == ["generator", "close"]


def test_settings_from_env(monkeypatch):
    class S(ServerSettings):
        model_config = {"env_prefix": "TESTSVC_"}

    monkeypatch.setenv("TESTSVC_VIDEO_ALLOWED_DIRS", "/data/a, /data/b")
    monkeypatch.setenv("TESTSVC_VIDEO_ALLOWED_SCHEMES", "RTSP,https")
    monkeypatch.setenv("TESTSVC_WORKERS", "3")
    settings = S()
    assert settings.video_allowed_dirs == [Path("/data/a"), Path("/data/b")]
    assert settings.video_allowed_schemes == ["rtsp", "https"]
    assert settings.window == 6


def test_model_code_imports_no_grpc():
    import subprocess
    import sys

    code = (
        "import sys, face_service.inference, object_service.inference, percept_runtime.workers;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'grpc'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
