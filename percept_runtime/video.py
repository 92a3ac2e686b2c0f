"""Video decoding into frames, with an allow-list for where videos may come from.

A video arrives inline (bytes, spooled to a temporary file for FFmpeg) or as a
URI the server opens itself. Local paths must lie under an allowed directory;
other schemes (rtsp, http...) must be allowed explicitly and are off by
default. Decoding is blocking: iterate a VideoReader from a thread.

A video can end before its container said it would (a cut download, frames
corrupt from some point on, timestamps that put frames out of the decoder's
reach). The reader reads one frame ahead, so the last frame it yields carries
a VideoSummary: frames expected vs processed, and whether (and why) the video
is partial. The frames before the break are still good, so a partial video is
a result with a warning, not an error; a video with no decodable frame at all
is refused.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import cv2
import numpy as np

from percept_runtime.errors import AccessDenied, InvalidInput

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoPolicy:
    """Where videos may be opened from, and how much of one may be processed."""

    allowed_dirs: tuple[Path, ...] = ()
    allowed_schemes: tuple[str, ...] = ()
    max_frames: int = 100_000
    max_frame_pixels: int = 40_000_000


@dataclass(frozen=True)
class VideoSummary:
    """How a video's decoding ended, told with its last frame.

    expected_frames: frames the request was to process, from the container's
    length (after stride and max_frames), 0 when unknown; processed_frames:
    frames decoded and yielded; last_frame_index: the last one's index among
    all decoded frames; partial: the video ended before expected_frames, for
    `reason`.
    """

    expected_frames: int
    processed_frames: int
    last_frame_index: int
    partial: bool = False
    reason: str = ""


@dataclass(frozen=True)
class Frame:
    """One decoded frame: RGB uint8 pixels and where it sits in the video.
    The last frame a reader yields carries its VideoSummary."""

    index: int
    timestamp: float
    rgb: np.ndarray
    summary: VideoSummary | None = None


def _duration(seconds: float) -> str:
    """Seconds in words a person reads at a glance: 5.9 s, 12.5 min, 10.0 h."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _local_path(uri: str) -> Path | None:
    """The filesystem path a URI names, or None when it is not a local file."""
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    if uri.startswith("/"):
        return Path(uri)
    return None


def resolve_uri(uri: str, policy: VideoPolicy) -> str:
    """Check a URI against the policy; return what to hand to OpenCV.

    Raises AccessDenied for a location the policy does not allow.
    """
    path = _local_path(uri)
    if path is not None:
        real = Path(os.path.realpath(path))
        for allowed in policy.allowed_dirs:
            base = Path(os.path.realpath(allowed))
            if real == base or base in real.parents:
                return str(real)
        raise AccessDenied(
            f"video path {uri!r} is not in a directory this server is allowed to open "
            "(its setting VIDEO_ALLOWED_DIRS); send the video's bytes instead"
        )
    scheme = urlparse(uri).scheme.lower()
    if not scheme:
        raise InvalidInput(f"video uri {uri!r} is neither an absolute path nor a URL")
    if scheme not in policy.allowed_schemes:
        raise AccessDenied(
            f"video uri scheme {scheme!r} is not allowed; the server allows "
            f"{list(policy.allowed_schemes) or 'no remote schemes'} (setting VIDEO_ALLOWED_SCHEMES)"
        )
    return uri


class VideoReader:
    """Opens a video and yields the sampled frames, RGB, in order.

    frame_stride <= 1 means every frame; max_frames <= 0 means the policy's
    limit. Raises InvalidInput when the video cannot be opened or decoded.
    """

    def __init__(
        self,
        *,
        content: bytes | None = None,
        uri: str | None = None,
        policy: VideoPolicy,
        frame_stride: int = 1,
        max_frames: int = 0,
    ) -> None:
        if not content and not uri:
            raise InvalidInput(
                "video is empty: set either video.content (the file's bytes) or video.uri"
            )
        self._tmp: str | None = None
        self.stride = max(1, frame_stride)
        self.max_frames = (
            policy.max_frames if max_frames <= 0 else min(max_frames, policy.max_frames)
        )
        if content:
            fd, self._tmp = tempfile.mkstemp(prefix="percept-video-")
            with os.fdopen(fd, "wb") as f:
                f.write(content)
            target, label = self._tmp, f"inline video ({len(content)} bytes)"
        else:
            target, label = resolve_uri(uri, policy), f"video {uri!r}"
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            self.close()
            raise InvalidInput(
                f"{label} could not be opened: it is not a video FFmpeg can decode, or it does not exist"
            )
        width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > policy.max_frame_pixels:
            self.close()
            raise InvalidInput(
                f"{label} frames are {width}x{height}, over the limit of {policy.max_frame_pixels} pixels"
            )
        self.width, self.height = width, height
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and math.isfinite(fps) and fps > 0 else 0.0
        total = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.total_frames = total if total > 0 else 0
        self.label = label
        self.stopped_at = 0

    @property
    def expected_frames(self) -> int:
        """Frames this reader will yield, when the container says; else 0."""
        if not self.total_frames:
            return 0
        return min(self.max_frames, math.ceil(self.total_frames / self.stride))

    def _next(self, index: int) -> tuple[int, float, np.ndarray] | None:
        """Decode the next sampled frame at or after `index` (skipping to a
        multiple of the stride): (index, timestamp, BGR), or None at the end
        (self.stopped_at: the first frame that could not be decoded)."""
        while index % self.stride:
            if not self._cap.grab():
                self.stopped_at = index
                return None
            index += 1
        ok, bgr = self._cap.read()
        if not ok:
            self.stopped_at = index
            return None
        timestamp = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if timestamp <= 0 and index and self.fps:
            timestamp = index / self.fps
        return index, timestamp, bgr

    def _summary(self, produced: int, last: tuple[int, float, np.ndarray]) -> VideoSummary:
        """What to say with the last frame: partial when the container promised
        more frames than were decoded before the decoder stopped."""
        expected, (index, timestamp, _) = self.expected_frames, last
        if not expected or produced >= expected:
            return VideoSummary(expected, produced, index)
        declared = (
            f"{self.total_frames} frames over {_duration(self.total_frames / self.fps)}"
            if self.fps
            else f"{self.total_frames} frames"
        )
        reason = (
            f"{self.label} could not be decoded from frame {self.stopped_at} on (the last frame "
            f"processed is {index}, at {_duration(timestamp)}), although its container declares "
            f"{declared}: {produced} of {expected} expected frames were processed. The file is "
            "truncated, corrupt from there on, or its timestamps put the remaining frames out "
            "of reach."
        )
        logger.warning(  # not the label: a URL may carry credentials
            "partial video: %d of %d expected frames, decoding stopped at frame %d",
            produced,
            expected,
            self.stopped_at,
        )
        return VideoSummary(expected, produced, index, partial=True, reason=reason)

    def __iter__(self) -> Iterator[Frame]:
        """The sampled frames in order. One frame is decoded ahead, so the last
        one yielded is known to be last and carries the VideoSummary."""
        produced = 0
        try:
            pending = self._next(0) if self.max_frames > 0 else None
            while pending is not None:
                produced += 1
                following = self._next(pending[0] + 1) if produced < self.max_frames else None
                index, timestamp, bgr = pending
                yield Frame(
                    index,
                    timestamp,
                    cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                    None if following is not None else self._summary(produced, pending),
                )
                pending = following
        finally:
            self.close()
        if produced == 0:
            raise InvalidInput(f"{self.label} has no decodable frames: it is truncated or corrupt")

    def close(self) -> None:
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = None
