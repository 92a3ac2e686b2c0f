"""Real people for the face-collection tests and the enroll benchmark: photos the
installed packages ship (scikit-image's astronaut, matplotlib's Grace Hopper,
the man in ultralytics' zidane.jpg), their enrollment versions (other crops,
a mirror image, other lighting), and new scenes where their heads are pasted
at other sizes onto other backgrounds (scikit-image's coffee, rocket and cat
photos), with the true place of each head known.

The face boxes are where dlib's HOG detector (upsample 1) finds each face, so
the test process itself loads no model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from harness import images
from harness.videos import MjpgWriter

PEOPLE = ("astronaut", "grace-hopper", "zidane")
# The astronaut's head in skimage's astronaut(), with margin (rows, columns).
FACE_PATCH = (slice(40, 210), slice(140, 300))


@dataclass(frozen=True)
class Photo:
    rgb: np.ndarray
    box: tuple[int, int, int, int]  # the face: left, top, right, bottom


def _read(path: Path | str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _assets() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


@functools.cache
def photos() -> dict[str, Photo]:
    import matplotlib
    from skimage import data

    grace = Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    return {
        "astronaut": Photo(data.astronaut(), (175, 76, 265, 166)),
        "grace-hopper": Photo(_read(grace), (180, 139, 366, 325)),
        "zidane": Photo(_read(_assets() / "zidane.jpg"), (906, 116, 1061, 270)),
    }


def strangers() -> np.ndarray:
    """bus.jpg: people never enrolled (dlib finds two faces)."""
    return _read(_assets() / "bus.jpg")


def encode(rgb: np.ndarray, fmt: str = ".jpg") -> bytes:
    """A photo as a client uploads it: a JPEG at quality 92."""
    return images.encode(rgb, fmt, jpeg_quality=92)


def relight(rgb: np.ndarray, gain: float, offset: float = 0.0) -> np.ndarray:
    return np.clip(rgb.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def head(person: str, margin: float = 0.6) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The person's head with `margin` (a fraction of the face) around it, and
    the face box inside that crop."""
    photo = photos()[person]
    h, w = photo.rgb.shape[:2]
    left, top, right, bottom = photo.box
    mx, my = int((right - left) * margin), int((bottom - top) * margin)
    x0, y0 = max(0, left - mx), max(0, top - my)
    x1, y1 = min(w, right + mx), min(h, bottom + my)
    crop = np.ascontiguousarray(photo.rgb[y0:y1, x0:x1])
    return crop, (left - x0, top - y0, right - x0, bottom - y0)


def enrollment_images(person: str) -> list[np.ndarray]:
    """Two versions of the person's photo to enroll: the photo itself, and a
    mirrored, darker crop of the head."""
    crop, _ = head(person, margin=0.8)
    return [photos()[person].rgb, relight(np.ascontiguousarray(crop[:, ::-1]), 0.75)]


def background(name: str, size: tuple[int, int]) -> np.ndarray:
    from skimage import data

    image = {"coffee": data.coffee, "rocket": data.rocket, "cat": data.chelsea}[name]()
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Placed:
    person: str
    region: tuple[int, int, int, int]  # where the pasted head is: left, top, right, bottom

    def contains(self, box) -> bool:
        """Whether a face box's centre lies in this head."""
        cx = (box["left"] + box["right"]) / 2 if isinstance(box, dict) else box[0]
        cy = (box["top"] + box["bottom"]) / 2 if isinstance(box, dict) else box[1]
        left, top, right, bottom = self.region
        return left <= cx <= right and top <= cy <= bottom


def scene(
    backdrop: str,
    size: tuple[int, int],
    placements: list[tuple[str, float, tuple[int, int], float]],
) -> tuple[np.ndarray, list[Placed]]:
    """A new image: each (person, scale, (x, y), light gain) head pasted onto a
    photo background at that scale and place. -> (image, where each head is)."""
    image = background(backdrop, size).copy()
    placed = []
    for person, scale, (x, y), gain in placements:
        crop, _ = head(person)
        crop = cv2.resize(
            crop,
            None,
            fx=scale,
            fy=scale,
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
        )
        crop = relight(crop, gain)
        h, w = crop.shape[:2]
        assert x + w <= size[0] and y + h <= size[1], f"{person} does not fit at {x},{y}"
        image[y : y + h, x : x + w] = crop
        placed.append(Placed(person, (x, y, x + w, y + h)))
    return image, placed


# Each scene: its photo background (also its name), the image size, and each
# (person, scale, (x, y), light gain) placed on it.
SCENES: dict[str, tuple[tuple[int, int], list[tuple[str, float, tuple[int, int], float]]]] = {
    "coffee": (
        (1100, 700),
        [
            ("astronaut", 1.4, (30, 60), 1.15),
            ("grace-hopper", 0.55, (420, 300), 0.85),
            ("zidane", 0.75, (760, 120), 1.0),
        ],
    ),
    "rocket": (
        (900, 600),
        [
            ("zidane", 1.3, (20, 40), 0.8),
            ("astronaut", 0.95, (470, 320), 1.0),
            ("grace-hopper", 0.4, (650, 40), 1.2),
        ],
    ),
}


def scenes() -> list[tuple[str, np.ndarray, list[Placed]]]:
    """New images of every enrolled person at other sizes, on other backgrounds."""
    return [(name, *scene(name, size, people)) for name, (size, people) in SCENES.items()]


def moving_heads_video(
    path: Path | str,
    people: tuple[str, str],
    n_frames: int,
    size: tuple[int, int] = (800, 480),
    fps: float = 10.0,
) -> list[list[Placed]]:
    """An MJPG AVI of two people's heads moving along known paths (one left to
    right along the top, the other right to left along the bottom) over the cat
    photo. -> each frame's heads."""
    width, height = size
    return _heads_video(
        path, people, n_frames, size, fps, "cat", 150,
        lambda t: [(int(10 + t * (width - 170)), 10),
                   (int(width - 160 - t * (width - 170)), height - 160)],
    )  # fmt: skip


def tiny_face_image(person: str = "astronaut", side: int = 36) -> np.ndarray:
    """A photo of the person whose face is only `side` pixels: found by the
    detector with upsample 2, too small to enroll."""
    crop, (left, top, right, bottom) = head(person, margin=1.2)
    scale = side / (right - left)
    small = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = background("coffee", (320, 240)).copy()
    h, w = small.shape[:2]
    canvas[60 : 60 + h, 100 : 100 + w] = small
    return canvas


def crossing_heads_video(
    path: Path | str,
    people: tuple[str, str],
    n_frames: int,
    away: range = range(0),
    size: tuple[int, int] = (640, 360),
    fps: float = 10.0,
) -> list[list[Placed]]:
    """An MJPG AVI of two people's heads crossing paths over the coffee photo:
    the first left to right, the second right to left, a little lower, drawn on
    top where they meet; the second is out of the picture for the frames in
    `away`. -> each frame's heads."""
    width, height = size
    return _heads_video(
        path, people, n_frames, size, fps, "coffee", 130,
        lambda t: [(int(10 + t * (width - 150)), 40),
                   (int(width - 140 - t * (width - 150)), height - 200)],
        away,
    )  # fmt: skip


def _heads_video(
    path: Path | str,
    people: tuple[str, str],
    n_frames: int,
    size: tuple[int, int],
    fps: float,
    backdrop: str,
    head_px: int,
    spots: Callable[[float], list[tuple[int, int]]],
    away: range = range(0),
) -> list[list[Placed]]:
    """Heads `head_px` tall pasted over a backdrop photo at spots(t) (t from 0
    to 1 over the clip), the second head left out in the frames of `away`."""
    crops = []
    for person in people:
        crop, _ = head(person)
        scale = head_px / max(crop.shape[:2])
        crops.append(cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    base = background(backdrop, size)
    writer = MjpgWriter(path, size, fps)
    truth = []
    for i in range(n_frames):
        frame = base.copy()
        placed = []
        at = spots(i / max(1, n_frames - 1))
        for k, (person, crop, (x, y)) in enumerate(zip(people, crops, at, strict=True)):
            if k == 1 and i in away:
                continue
            h, w = crop.shape[:2]
            frame[y : y + h, x : x + w] = crop
            placed.append(Placed(person, (x, y, x + w, y + h)))
        writer.write(frame)
        truth.append(placed)
    writer.release()
    return truth
