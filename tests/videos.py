"""Test videos built from real images: a patch moving on a plain background,
so the true position of what it contains is known in every frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


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
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPG"
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    offsets = []
    for i in range(n_frames):
        x = min(start[0] + step[0] * i, width - pw)
        y = min(start[1] + step[1] * i, height - ph)
        frame = background(width, height)
        frame[y : y + ph, x : x + pw] = patch
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
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
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPG"
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    truth = []
    for i in range(n_frames):
        frame = base.copy()
        shapes = [
            synthetic.draw_shape(frame, synthetic.CIRCLE, 80 + 12 * i, 140, 90, (230, 40, 40)),
            synthetic.draw_shape(
                frame, synthetic.SQUARE, 460, 80 + 8 * i, 100, (20, 20, 220), angle=10
            ),
        ]
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        truth.append(shapes)
    writer.release()
    return truth
