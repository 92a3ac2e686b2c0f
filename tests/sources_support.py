"""Live sources in tests: a synthetic clip whose crossings and dwell times are
known, a source worker process, and waits on a source's status."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np

from harness.videos import background

WIDTH, HEIGHT = 640, 480
# A vertical line down the middle (start at the top): a shape moving right
# crosses it "in" (see gateway/sources.Line), moving left "out".
LINE = {"id": "door", "start": [320, 0], "end": [320, 480]}
# A zone on the right.
ZONE = {"id": "shelf", "polygon": [[440, 140], [639, 140], [639, 340], [440, 340]]}


@dataclass(frozen=True)
class ClipTruth:
    fps: float
    frames: int
    crossings_in: int
    crossings_out: int
    dwell_s: list[float]  # each visit of the zone, in order


def _path() -> list[float]:
    """The circle's x in each frame: waits left of the line (while the
    stream starts), goes right across the line into the zone, rests, back
    left across the line, walks up to the line and stands on it jittering
    (never 2 frames on one side), then right across it again and out of the
    frame."""
    xs: list[float] = [100.0] * 30  # waits
    xs += [100 + 22 * i for i in range(1, 21)]  # 122 -> 540: crosses "in", enters the zone
    xs += [540.0] * 20  # rests in the zone
    xs += [540 - 22 * i for i in range(1, 21)]  # back to 100: leaves the zone, crosses "out"
    xs += [100 + 22 * i for i in range(1, 10)]  # 122 -> 298: up to the line
    xs += [316.0 if i % 2 == 0 else 324.0 for i in range(16)]  # jitter on the line
    xs += [346 + 22 * i for i in range(4)]  # 346 -> 412: across "in" (short of the zone)
    xs += [412.0] * 10  # stays, so the crossing is seen on both sides
    return xs


def crossing_clip(path: Path, fps: float = 10.0) -> ClipTruth:
    """Write an MJPG AVI of one circle following _path, and its truth."""
    from object_service import synthetic

    xs = _path()
    base = background(WIDTH, HEIGHT)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    assert writer.isOpened(), "OpenCV cannot write MJPG"
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    for x in xs:
        frame = base.copy()
        synthetic.draw_shape(frame, synthetic.CIRCLE, x, 240, 80, (230, 40, 40))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    # Dwell: frames whose centre is inside the zone (x >= 440), as runs.
    inside = [x >= 440 for x in xs]
    dwell, start = [], None
    for i, is_in in enumerate([*inside, False]):
        if is_in and start is None:
            start = i
        elif not is_in and start is not None:
            dwell.append((i - start) / fps)  # from the first frame in to the first frame out
            start = None
    # The jitter is around x=320: the centre alternates sides every frame.
    return ClipTruth(fps, len(xs), crossings_in=2, crossings_out=1, dwell_s=dwell)


def wait_status(
    client: httpx.Client, source_id: str, predicate, timeout: float = 60.0, what: str = ""
) -> dict:
    """Poll the source until predicate(source) is true; the source."""
    deadline = time.monotonic() + timeout
    source: dict = {}
    while time.monotonic() < deadline:
        response = client.get(f"/api/sources/{source_id}")
        if response.status_code == 200:
            source = response.json()
            if predicate(source):
                return source
        time.sleep(0.2)
    raise AssertionError(f"source {source_id} never {what or 'matched'}: last {source}")


def events_of(client: httpx.Client, source_id: str) -> list[dict]:
    """Every event of a source the client may read (GET /api/events), oldest
    first, each as {"type": ..., **data}."""
    out, cursor = [], None
    while True:
        params = {"source_id": source_id, "limit": 500, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/events", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        out += [{"type": e["type"], **e["data"]} for e in body["events"]]
        cursor = body.get("next_cursor")
        if not cursor or not body["events"]:
            return out[::-1]


def synthetic_noise_frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)


SYSTEM_PYTHON = "/usr/bin/python3"


def ensure_tool(name: str) -> str:
    """A tool the live sources' tests need (rtsp: Debian's python3 with
    GStreamer's RTSP server; ffmpeg), installed from Debian's packages when
    missing (scripts/ensure_tools.py, what `make tools` runs)."""
    import sys

    from tests.support import ROOT

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import ensure_tools
    finally:
        sys.path.pop(0)
    return ensure_tools.TOOLS[name]()


class RtspServer:
    """tests/rtsp_server.py on a loopback port; stop() kills it, start() brings
    it back on the same port."""

    def __init__(self, clip: Path) -> None:
        from tests.support import free_port

        self.clip = clip
        self.port = free_port()
        self.proc = None

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"

    def start(self, timeout: float = 30.0) -> RtspServer:
        import subprocess

        from tests.support import ROOT

        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(ROOT / "tests" / "rtsp_server.py"), str(self.port), str(self.clip)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline()  # "ready" once it listens
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the RTSP server did not start (said {line!r})")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
