"""What the gateway checks in an upload before accepting it: nothing reaches a
backend (or the queue) that the gateway can tell is bad. Cheap checks only:
an image's header (format, pixel count) and its end (a truncated file), a
video's container and first frame."""

from __future__ import annotations

import asyncio
import struct

from gateway.errors import ApiError
from percept_runtime.errors import InvalidInput
from percept_runtime.imaging import ACCEPTED_TEXT, open_image
from percept_runtime.video import VideoPolicy, VideoReader

IMAGE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/jpg",
        "image/png",
        "image/webp",
        "image/bmp",
        "image/x-ms-bmp",
        "application/octet-stream",
    }
)


def _truncated(data: bytes, fmt: str) -> bool:
    """Whether an image visibly ends early (its format's end marker or declared
    size is missing). Trailing padding after the end is tolerated."""
    tail = data[-1024:].rstrip(b"\x00\r\n\t ")
    if fmt == "JPEG":
        return b"\xff\xd9" not in tail
    if fmt == "PNG":
        return b"IEND" not in tail[-32:]
    if fmt == "WEBP":
        (size,) = struct.unpack_from("<I", data, 4)
        return len(data) < size + 8
    if fmt == "BMP":
        (size,) = struct.unpack_from("<I", data, 2)
        return size > len(data)
    return False


def check_image(data: bytes, content_type: str, max_pixels: int) -> tuple[int, int]:
    """Check an uploaded image; returns its (width, height). ApiError otherwise."""
    if content_type not in IMAGE_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"file has content type {content_type}: send a {ACCEPTED_TEXT} image",
        )
    try:
        image = open_image(data, max_pixels)
    except InvalidInput as exc:
        raise ApiError(422, "invalid_image", exc.message, fields=["file"]) from None
    if _truncated(data, image.format):
        raise ApiError(
            422,
            "invalid_image",
            f"image {image.format} {image.width}x{image.height} is truncated "
            f"({len(data)} bytes, its end is missing): send the whole file",
            fields=["file"],
        )
    return image.size


def _video_type_ok(content_type: str) -> bool:
    return content_type.startswith("video/") or content_type in (
        "application/octet-stream",
        "application/x-matroska",
    )


def _probe_video(data: bytes, max_pixels: int) -> tuple[int, int]:
    reader = VideoReader(
        content=data, policy=VideoPolicy(max_frames=1, max_frame_pixels=max_pixels)
    )
    try:
        if next(iter(reader), None) is None:
            raise InvalidInput("video has no decodable frames")
        return reader.width, reader.height
    finally:
        reader.close()


async def check_video(data: bytes, content_type: str, max_pixels: int) -> tuple[int, int]:
    """Check an uploaded video opens and its first frame decodes; returns its
    frames' (width, height)."""
    if not _video_type_ok(content_type):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"file has content type {content_type}: send a video (video/*)",
        )
    try:
        return await asyncio.to_thread(_probe_video, data, max_pixels)
    except InvalidInput as exc:
        raise ApiError(422, "invalid_video", exc.message, fields=["file"]) from None
