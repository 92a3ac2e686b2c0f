"""Reading one stream: a thread that opens it with OpenCV's FFmpeg backend
(open and read timeouts), decodes every frame and keeps only the newest in a
one-slot mailbox, reconnecting with backoff for ever when the stream drops or
never answers. A slow consumer therefore drops frames, counted, instead of
building a backlog; memory stays one frame.

Files are read at their own frame rate (so a file behaves like a camera) and,
when looped, start again at the end.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import cv2
import numpy as np

from gateway.sources import SourcePolicy, check_url, masked, resolve_checked
from percept_runtime.errors import InvalidInput

logger = logging.getLogger(__name__)

# FFmpeg's own options for every network stream: RTSP over TCP (no lost UDP
# packets on a loaded host), and socket timeouts (microseconds).
os.environ.setdefault(
    "OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp|timeout;5000000|rw_timeout;5000000"
)


@dataclass
class Frame:
    image: np.ndarray  # BGR, as OpenCV decodes
    seq: int  # frames read from the stream so far (1-based)
    captured_at: float  # time.time() when decoded
    at: float  # the source's clock: a file's presentation time (from its start), else captured_at


class Capture:
    """The reader thread of one source. `on_state(state, reason)` is called from
    the thread on every change; `on_frame()` after each new frame."""

    def __init__(
        self,
        url: str,
        policy: SourcePolicy,
        *,
        loop: bool = False,
        on_state: Callable[[str, str], None],
        on_frame: Callable[[], None],
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        backoff_s: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        self.url = url
        self.policy = policy
        self.loop = loop
        self.on_state = on_state
        self.on_frame = on_frame
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.backoff_s = backoff_s
        self.is_file = url.startswith("/") or url.lower().startswith("file:")
        self.frames_in = 0
        self.dropped = 0  # overwritten unread although due (the consumer was busy)
        self.due_at = 0.0  # time.time() from which the consumer wants the next frame
        self.reconnects = 0
        self.width = self.height = 0
        self._slot: Frame | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def take(self) -> Frame | None:
        """The newest frame not taken yet (None when there is none)."""
        with self._lock:
            frame, self._slot = self._slot, None
        return frame

    # --- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        ever_live = False
        reason = ""
        while not self._stop.is_set():
            waiting = "reconnecting" if ever_live else "connecting"
            try:
                target = self._target()
                if not (self.is_file and ever_live and not reason):
                    self.on_state(waiting, reason)  # a looped file goes on live
                cap = self._open(target)
                try:
                    was_live = self._read(cap)
                finally:
                    cap.release()
                if self._stop.is_set():
                    return
                if was_live:
                    ever_live, attempt = True, 0
                    if self.is_file:
                        if not self.loop:
                            self.on_state("ended", "the file ended")
                            return
                        continue  # looped file: start again, not a reconnect
                    self.reconnects += 1
                    reason = "the stream ended"
                    self.on_state("reconnecting", reason)
            except _Refused as exc:
                reason = exc.reason
                self.on_state("failed", reason)
            except Exception as exc:  # noqa: BLE001 - any failure: say so, retry
                if self._stop.is_set():
                    return
                reason = str(exc) or type(exc).__name__
                self.on_state(waiting, reason)
            attempt += 1
            delay = min(self.backoff_s[1], self.backoff_s[0] * 2 ** min(attempt - 1, 10))
            logger.info("source %s: %s; retrying in %.1fs", masked(self.url), reason, delay)
            self._stop.wait(delay)

    def _target(self) -> str:
        """The URL, checked again at every connection (a name may resolve
        elsewhere now)."""
        try:
            target = check_url(self.url, self.policy, resolve=False)
            if not self.is_file:
                parts = urlsplit(target)
                resolve_checked(parts.hostname, parts.port, self.policy)
        except InvalidInput as exc:
            raise _Refused(exc.message) from None
        return target

    def _open(self, target: str) -> cv2.VideoCapture:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000),
        ]  # fmt: skip
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise ConnectionError("cannot open the stream (no answer, or not a video)")
        return cap

    def _read(self, cap: cv2.VideoCapture) -> bool:
        """Read until the stream ends or fails; whether any frame came."""
        # Files, and streams of a known length (an HLS VOD playlist), play at
        # their own rate; live streams come at theirs.
        recorded = self.is_file or cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0
        fps = cap.get(cv2.CAP_PROP_FPS) if recorded else 0.0
        period = 1.0 / fps if 0 < fps <= 240 else 0.0
        started = time.monotonic()
        base = time.time()
        pts_base = base
        n = 0
        while not self._stop.is_set():
            ok, image = cap.read()
            if not ok or image is None:
                if n == 0:
                    raise ConnectionError("the stream sent no decodable frame")
                return True
            height, width = image.shape[:2]
            if width * height > self.policy.max_pixels:
                raise _Refused(
                    f"frames of {width}x{height} are over the pixel limit "
                    f"({self.policy.max_pixels}, SOURCES_MAX_PIXELS)"
                )
            if n == 0:
                self.width, self.height = width, height
                self.on_state("live", "")
            n += 1
            if period:  # a file plays at its own rate
                due = started + n * period
                wait = due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return True
            now = time.time()
            if period:
                at = base + (n - 1) * period
            else:  # a stream: its presentation time, when it has one (arrival jitters)
                pts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if n == 1 or pts <= 0:
                    pts_base, at = now - max(pts, 0.0), now
                else:
                    at = pts_base + pts
            with self._lock:
                self.frames_in += 1
                if self._slot is not None and self._slot.captured_at >= self.due_at:
                    self.dropped += 1
                self._slot = Frame(image, self.frames_in, now, at)
            self.on_frame()
        return n > 0


class _Refused(Exception):
    """A stream we will not read (policy, size): failed, retried slowly."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
