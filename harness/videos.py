"""Test videos built from real images: a patch moving on a plain background,
so the true position of what it contains is known in every frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


class MjpgWriter:
    """An MJPG AVI at quality 95, written one RGB frame at a time."""

    def __init__(self, path: Path | str, size: tuple[int, int], fps: float) -> None:
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
        assert self._writer.isOpened(), "OpenCV cannot write MJPG"
        self._writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)

    def write(self, rgb: np.ndarray) -> None:
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def release(self) -> None:
        self._writer.release()


def background(width: int, height: int) -> np.ndarray:
    """A smooth gradient: nothing in it looks like a face or an object."""
    x = np.linspace(60, 140, width, dtype=np.float32)
    y = np.linspace(0, 40, height, dtype=np.float32)[:, None]
    gray = (x[None, :] + y).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def moving_patch_video(
    path: Path,
    patch: np.ndarray,
    n_frames: int,
    size: tuple[int, int] = (640, 480),
    start: tuple[int, int] = (20, 30),
    step: tuple[int, int] = (14, 6),
    fps: float = 10.0,
) -> list[tuple[int, int]]:
    """Write an MJPG AVI of `patch` (RGB) moving by `step` pixels a frame.

    Returns the patch's top-left (x, y) in each frame.
    """
    width, height = size
    ph, pw = patch.shape[:2]
    writer = MjpgWriter(path, (width, height), fps)
    offsets = []
    for i in range(n_frames):
        x = min(start[0] + step[0] * i, width - pw)
        y = min(start[1] + step[1] * i, height - ph)
        frame = background(width, height)
        frame[y : y + ph, x : x + pw] = patch
        writer.write(frame)
        offsets.append((x, y))
    writer.release()
    return offsets


def read_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video, RGB, as OpenCV decodes it."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def moving_shapes_video(path: Path, n_frames: int, seed: int = 7, fps: float = 10.0) -> list[list]:
    """Write an MJPG AVI of two synthetic shapes moving across a textured
    background; return each frame's true shapes (object_service.synthetic.Shape)."""
    from object_service import synthetic

    rng = np.random.default_rng(seed)
    width, height = 640, 480
    base = synthetic.make_background(rng, width, height)
    writer = MjpgWriter(path, (width, height), fps)
    truth = []
    for i in range(n_frames):
        frame = base.copy()
        shapes = [
            synthetic.draw_shape(frame, synthetic.CIRCLE, 80 + 12 * i, 140, 90, (230, 40, 40)),
            synthetic.draw_shape(
                frame, synthetic.SQUARE, 460, 80 + 8 * i, 100, (20, 20, 220), angle=10
            ),
        ]
        writer.write(frame)
        truth.append(shapes)
    writer.release()
    return truth


# --- broken videos: the container promises frames the decoder never reaches ------

_MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


def _boxes(data: bytes) -> list[list]:
    """An MP4's boxes as [type, payload or children], containers parsed."""
    out, at = [], 0
    while at < len(data):
        size, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        assert size >= 8, "64-bit or open-ended MP4 boxes are not handled here"
        payload = data[at + 8 : at + size]
        out.append([kind, _boxes(payload) if kind in _MP4_CONTAINERS else payload])
        at += size
    return out


def _unbox(boxes: list[list]) -> bytes:
    out = b""
    for kind, body in boxes:
        payload = _unbox(body) if isinstance(body, list) else body
        out += (8 + len(payload)).to_bytes(4, "big") + kind + payload
    return out


def _walk(boxes: list[list], kind: bytes):
    for box in boxes:
        if box[0] == kind:
            yield box
        if isinstance(box[1], list):
            yield from _walk(box[1], kind)


def mp4_video(path: Path, n_frames: int, fps: float = 10.0, size=(320, 240)) -> None:
    """Write an MP4 (MPEG-4 part 2) of a square moving on a gradient, its index
    (moov) first, as a web-ready MP4 is: a cut copy still opens."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MP4"
    for i in range(n_frames):
        frame = background(width, height)
        frame[40:100, 5 * i % (width - 60) :][:, :60] = 220
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    boxes = _boxes(path.read_bytes())
    moov = next(b for b in boxes if b[0] == b"moov")
    rest = [b for b in boxes if b[0] != b"moov"]
    shift = len(_unbox([moov]))
    for stco in _walk([moov], b"stco"):  # chunk offsets move by the index's size
        body = stco[1]
        count = int.from_bytes(body[4:8], "big")
        offsets = [int.from_bytes(body[8 + 4 * i : 12 + 4 * i], "big") for i in range(count)]
        stco[1] = body[:8] + b"".join((o + shift).to_bytes(4, "big") for o in offsets)
    ftyp = [b for b in rest if b[0] == b"ftyp"]
    path.write_bytes(_unbox(ftyp + [moov] + [b for b in rest if b[0] != b"ftyp"]))


def stretch_mp4(path: Path, hours: float) -> None:
    """Rewrite an MP4's timestamps: the first frame lasts `hours`, the others
    keep their rate, so the container still says it holds every frame while
    all but the first lie hours away from where the frame rate puts them."""
    boxes = _boxes(path.read_bytes())
    (mdhd,) = _walk(boxes, b"mdhd")
    version = mdhd[1][0]
    timescale_at = 20 if version == 1 else 12
    timescale = int.from_bytes(mdhd[1][timescale_at : timescale_at + 4], "big")
    (stts,) = _walk(boxes, b"stts")
    body = stts[1]
    assert int.from_bytes(body[4:8], "big") == 1, "expected one constant frame duration"
    count, delta = int.from_bytes(body[8:12], "big"), int.from_bytes(body[12:16], "big")
    long = int(hours * 3600 * timescale)
    entries = [(1, long), (count - 1, delta)]
    stts[1] = (
        body[:4]
        + len(entries).to_bytes(4, "big")
        + b"".join(n.to_bytes(4, "big") + d.to_bytes(4, "big") for n, d in entries)
    )
    path.write_bytes(_unbox(boxes))


def truncate(path: Path, fraction: float) -> bytes:
    """Cut a file to `fraction` of its length (as an interrupted copy would);
    return the bytes kept."""
    data = path.read_bytes()[: int(path.stat().st_size * fraction)]
    path.write_bytes(data)
    return data


# --- tracking: known identities that cross, hide, leave and come back ------------


def tracking_shapes_video(
    path: Path, seed: int, n_frames: int = 36, fps: float = 10.0
) -> list[list[tuple[int, object]]]:
    """Write an MJPG AVI of four shapes with known identities: two of the same
    class crossing paths at different speeds (the later drawn hiding part of
    the other), one leaving the frame and coming back ~8 frames later,
    each speeding up and slowing down. Returns, per frame, (identity, Shape) of
    the shapes fully in the frame and at least 60% visible."""
    from object_service import synthetic

    rng = np.random.default_rng(seed)
    width, height = 640, 480
    base = background(width, height)
    t = np.arange(n_frames)
    pace = np.cumsum(1.0 + 0.5 * np.sin(t / 5 + rng.uniform(0, 6)))  # varying speed
    pace = pace / pace[-1]
    y0 = rng.uniform(110, 150)
    paths = {
        # identity: (class, x(t), y(t), size, colour)
        1: (synthetic.CIRCLE, 70 + 500 * pace, y0 + 0 * t, 80, (230, 40, 40)),
        2: (synthetic.CIRCLE, 570 - 500 * t / n_frames, y0 + 25 + 0 * t, 80, (30, 200, 60)),
        3: (synthetic.SQUARE, 520 + 0 * t, 360 - 60 * pace, 100, (20, 20, 220)),
        # leaves on the right around 40% of the clip, returns by 65%
        4: (
            synthetic.TRIANGLE,
            np.where((t > 0.4 * n_frames) & (t < 0.62 * n_frames), 900, 120 + 10 * t),
            380 + 0 * t,
            90,
            (240, 200, 30),
        ),
    }
    writer = MjpgWriter(path, (width, height), fps)
    truth = []
    for i in range(n_frames):
        frame = base.copy()
        drawn, masks = [], []
        for ident, (cls, xs, ys, size, colour) in paths.items():
            x, y = float(xs[i]), float(ys[i])
            if x - size / 2 >= width:
                continue  # off the frame
            mask = np.zeros((height, width), np.uint8)
            synthetic.draw_shape(mask, cls, x, y, size, (255,), angle=5.0 * i)
            for earlier in masks:  # drawn later: on top of those before
                earlier &= ~mask
            shape = synthetic.draw_shape(frame, cls, x, y, size, colour, angle=5.0 * i)
            drawn.append((ident, shape, int(mask.sum() // 255)))
            masks.append(mask)
        visible = []
        for (ident, shape, area), mask in zip(drawn, masks, strict=True):
            inside = shape.left > 0 and shape.top > 0 and shape.right < width - 1
            if inside and shape.bottom < height - 1 and mask.sum() // 255 >= 0.6 * area:
                visible.append((ident, shape))
        writer.write(frame)
        truth.append(visible)
    writer.release()
    return truth


def write_frames(path: Path, frames: int, fps: float = 10.0, size=(640, 480)) -> None:
    """A plain clip of a square drifting slowly (for sources that only need to run)."""
    from object_service import synthetic

    width, height = size
    base = background(width, height)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for i in range(frames):
        frame = base.copy()
        synthetic.draw_shape(frame, synthetic.SQUARE, 200 + 2 * i, 200, 90, (20, 20, 220))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
