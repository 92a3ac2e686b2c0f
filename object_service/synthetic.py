"""Deterministic synthetic scenes of coloured shapes, for a small test detector.

Plain numpy + OpenCV (no ultralytics): the test suite uses it to build frames and
videos whose ground truth is known exactly, and `scripts/train_test_model.py`
uses it to train `object_service/models/shapes-yolo.pt`.

Conventions:
  * Images are RGB, uint8, shape (height, width, 3).
  * Boxes are in pixels, (left, top, right, bottom), tight around the drawn shape
    and clipped to the image.
  * A shape's `size` is the diameter of its circumscribed circle, so a shape of
    a given size fits the same disc whatever its class or rotation.
  * Everything is a pure function of the `np.random.Generator` it is given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star")

CIRCLE, SQUARE, TRIANGLE, STAR = range(len(CLASS_NAMES))

# Sizes (circumscribed diameter, px) that make_scene draws on a 640x480 frame;
# they scale with min(width, height) / 480 on other frame sizes.
SIZE_RANGE_480: tuple[float, float] = (30.0, 160.0)

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_SCALE = 1 << _SHIFT
_STAR_INNER = 0.45  # inner / outer radius of the star


@dataclass(frozen=True)
class Shape:
    """One drawn shape: its class id (index into CLASS_NAMES) and tight box in pixels."""

    class_id: int
    left: float
    top: float
    right: float
    bottom: float

    @property
    def name(self) -> str:
        return CLASS_NAMES[self.class_id]


# --------------------------------------------------------------------- shapes


def shape_polygon(
    class_id: int, cx: float, cy: float, size: float, angle: float = 0.0
) -> np.ndarray:
    """Vertices (N, 2) of a polygonal shape; angle in degrees, counter-clockwise on screen.

    At angle 0 a square is axis-aligned and a triangle or star points up.
    """
    r = size / 2.0
    a0 = math.radians(angle)
    if class_id == SQUARE:
        angles = [a0 + math.pi / 4 + k * math.pi / 2 for k in range(4)]
        radii = [r] * 4
    elif class_id == TRIANGLE:
        angles = [a0 + math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
        radii = [r] * 3
    elif class_id == STAR:
        angles = [a0 + math.pi / 2 + k * math.pi / 5 for k in range(10)]
        radii = [r if k % 2 == 0 else r * _STAR_INNER for k in range(10)]
    else:
        raise ValueError(f"class {class_id} ({CLASS_NAMES[class_id]}) is not a polygon")
    # Angles run counter-clockwise from +x as seen on screen, where y points down.
    return np.array(
        [
            (cx + rr * math.cos(a), cy - rr * math.sin(a))
            for a, rr in zip(angles, radii, strict=True)
        ],
        dtype=np.float64,
    )


def _clip_box(class_id: int, l: float, t: float, r: float, b: float, w: int, h: int) -> Shape:
    return Shape(
        class_id,
        float(min(max(l, 0.0), w)),
        float(min(max(t, 0.0), h)),
        float(min(max(r, 0.0), w)),
        float(min(max(b, 0.0), h)),
    )


def draw_shape(
    img: np.ndarray,
    class_id: int,
    cx: float,
    cy: float,
    size: float,
    color: Sequence[int],
    angle: float = 0.0,
) -> Shape:
    """Draw one filled shape in place and return its tight box (clipped to the image).

    size: diameter of the circumscribed circle, px.  angle: degrees (ignored for a circle).
    color: (r, g, b) for an RGB image, in the image's own channel order in general.
    """
    if not 0 <= class_id < len(CLASS_NAMES):
        raise ValueError(f"unknown class id {class_id}")
    h, w = img.shape[:2]
    color = tuple(int(c) for c in color)
    if class_id == CIRCLE:
        r = size / 2.0
        cv2.circle(
            img,
            (round(cx * _SCALE), round(cy * _SCALE)),
            round(r * _SCALE),
            color,
            thickness=-1,
            lineType=cv2.LINE_AA,
            shift=_SHIFT,
        )
        return _clip_box(class_id, cx - r, cy - r, cx + r, cy + r, w, h)
    pts = shape_polygon(class_id, cx, cy, size, angle)
    cv2.fillPoly(
        img,
        [np.round(pts * _SCALE).astype(np.int32)],
        color,
        lineType=cv2.LINE_AA,
        shift=_SHIFT,
    )
    (l, t), (r, b) = pts.min(axis=0), pts.max(axis=0)
    return _clip_box(class_id, l, t, r, b, w, h)


# ----------------------------------------------------------------- background


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1], (h, w, 3) float32."""
    gw = max(2, cells)
    gh = max(2, round(cells * height / width))
    grid = rng.random((gh, gw, 3), dtype=np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _random_color(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, 3).astype(np.float32)


def _add_distractors(rng: np.random.Generator, img: np.ndarray) -> None:
    """Lines, curves and shapeless blobs: clutter that is none of the classes."""
    h, w = img.shape[:2]
    scale = min(w, h) / 480
    for _ in range(rng.integers(0, 7)):  # straight lines
        p1 = (int(rng.integers(-w // 4, w + w // 4)), int(rng.integers(-h // 4, h + h // 4)))
        p2 = (int(rng.integers(-w // 4, w + w // 4)), int(rng.integers(-h // 4, h + h // 4)))
        thick = max(1, int(rng.integers(1, 5) * scale))
        cv2.line(img, p1, p2, tuple(int(c) for c in _random_color(rng)), thick, cv2.LINE_AA)
    for _ in range(rng.integers(0, 4)):  # random-walk curves
        n = int(rng.integers(4, 12))
        start = rng.random(2) * (w, h)
        steps = rng.normal(0, 40 * scale, (n, 2)).cumsum(axis=0)
        pts = (start + steps).astype(np.int32)
        thick = max(1, int(rng.integers(1, 4) * scale))
        color = tuple(int(c) for c in _random_color(rng))
        cv2.polylines(img, [pts], False, color, thick, cv2.LINE_AA)
    for _ in range(rng.integers(0, 4)):  # ragged, mottled, see-through blobs
        bw = int(rng.integers(40, 220) * scale) + 4
        bh = int(rng.integers(40, 220) * scale) + 4
        x0 = int(rng.integers(-bw // 2, w - bw // 2))
        y0 = int(rng.integers(-bh // 2, h - bh // 2))
        field = _smooth_noise(rng, bw, bh, int(rng.integers(5, 11)))
        yy, xx = np.mgrid[0:bh, 0:bw]
        vignette = 1 - np.hypot((xx / bw - 0.5) * 2, (yy / bh - 0.5) * 2)
        mask = (field[..., 0] + vignette * 0.35) > 0.8
        # Drop small compact fragments: at a few pixels across they would pass for a shape.
        n_cc, labels, stats, _ = cv2.connectedComponentsWithStats(
            mask.astype(np.uint8), connectivity=8
        )
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < 900 * scale * scale)
        mask &= ~np.isin(labels, small[small > 0])
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + bw, w), min(y0 + bh, h)
        if xa >= xb or ya >= yb:
            continue
        sub = mask[ya - y0 : yb - y0, xa - x0 : xb - x0]
        paint = _random_color(rng) + (field[ya - y0 : yb - y0, xa - x0 : xb - x0] - 0.5) * 120
        alpha = float(rng.uniform(0.3, 0.85))
        region = img[ya:yb, xa:xb].astype(np.float32)
        region[sub] = region[sub] * (1 - alpha) + paint[sub] * alpha
        img[ya:yb, xa:xb] = region.clip(0, 255).astype(np.uint8)


def make_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random RGB background: gradient, mottled noise, stripes, sensor noise, clutter.

    About three in ten are a plain smooth gradient with nothing else in it.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    proj = xx * math.cos(theta) + yy * math.sin(theta)
    t = ((proj - proj.min()) / max(float(np.ptp(proj)), 1.0))[..., None]
    c1, c2 = _random_color(rng), _random_color(rng)
    if rng.random() < 0.3:  # greyish
        c1[:] = c1.mean()
        c2[:] = c2.mean()
    img = c1 * (1 - t) + c2 * t
    plain = rng.random() < 0.3
    if not plain:
        amp = rng.uniform(0, 90)
        img += (_smooth_noise(rng, width, height, int(rng.integers(3, 24))) - 0.5) * amp
        if rng.random() < 0.25:  # soft stripes
            period = rng.uniform(8, 60) * min(width, height) / 480
            phi = rng.uniform(0, 2 * math.pi)
            s = np.sin((xx * math.cos(phi) + yy * math.sin(phi)) * 2 * math.pi / period)
            img += s[..., None] * rng.uniform(5, 30)
    img = img.clip(0, 255).astype(np.uint8)
    if not plain:
        _add_distractors(rng, img)
    return img


# ---------------------------------------------------------------------- scene


def contrasting_color(
    rng: np.random.Generator, patch: np.ndarray, min_distance: float = 100.0
) -> tuple[int, int, int]:
    """A random colour (one in five grey) at RGB distance >= min_distance from the patch's mean.

    The difference may be in brightness, in hue or both, so a detector trained on these
    scenes cannot rely on brightness alone (green on mid grey must be seen too).
    """
    mean = patch.reshape(-1, 3).mean(axis=0) if patch.size else np.full(3, 128.0)
    for _ in range(50):
        c = rng.integers(0, 256, 3)
        if rng.random() < 0.2:
            c[:] = c[0]
        if float(np.linalg.norm(c - mean)) >= min_distance:
            return int(c[0]), int(c[1]), int(c[2])
    far = np.where(mean > 127, 0, 255)  # the farthest corner of the RGB cube
    return int(far[0]), int(far[1]), int(far[2])


def make_scene(
    rng: np.random.Generator,
    width: int = 640,
    height: int = 480,
    n_objects: tuple[int, int] = (1, 5),
) -> tuple[np.ndarray, list[Shape]]:
    """A random RGB scene with n_objects[0]..n_objects[1] (inclusive) non-overlapping shapes."""
    img = make_background(rng, width, height)
    k = min(width, height) / 480
    lo, hi = SIZE_RANGE_480[0] * k, SIZE_RANGE_480[1] * k
    n = int(rng.integers(n_objects[0], n_objects[1] + 1))
    placed: list[tuple[float, float, float]] = []  # (cx, cy, radius)
    shapes: list[Shape] = []
    for _ in range(n):
        for _attempt in range(60):
            # log-uniform sizes: as many small shapes as large ones
            size = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            r = size / 2
            if 2 * r + 2 > min(width, height):
                continue
            cx = float(rng.uniform(r + 1, width - r - 1))
            cy = float(rng.uniform(r + 1, height - r - 1))
            if all(math.hypot(cx - x, cy - y) > r + rr + 2 for x, y, rr in placed):
                break
        else:
            continue
        placed.append((cx, cy, r))
        class_id = int(rng.integers(0, len(CLASS_NAMES)))
        angle = float(rng.uniform(0, 360))
        x0, y0 = int(max(cx - r, 0)), int(max(cy - r, 0))
        patch = img[y0 : int(cy + r) + 1, x0 : int(cx + r) + 1]
        color = contrasting_color(rng, patch)
        shapes.append(draw_shape(img, class_id, cx, cy, size, color, angle))
    if rng.random() < 0.3:  # a little defocus now and then
        sigma = rng.uniform(0.5, 1.5) * k
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    if rng.random() < 0.5:  # sensor noise
        noise = rng.normal(0, rng.uniform(1, 8), img.shape)
        img = (img.astype(np.float32) + noise).clip(0, 255).astype(np.uint8)
    return img, shapes


# -------------------------------------------------------------------- dataset


def yolo_label_lines(shapes: Sequence[Shape], width: int, height: int) -> list[str]:
    """YOLO txt lines: class cx cy w h, normalised to the image size."""
    lines = []
    for s in shapes:
        if s.right - s.left < 1 or s.bottom - s.top < 1:
            continue
        lines.append(
            f"{s.class_id} {(s.left + s.right) / 2 / width:.6f} {(s.top + s.bottom) / 2 / height:.6f} "
            f"{(s.right - s.left) / width:.6f} {(s.bottom - s.top) / height:.6f}"
        )
    return lines


def write_yolo_dataset(
    root: Path,
    n_train: int,
    n_val: int,
    seed: int,
    imgsz: int = 320,
    scene_size: tuple[int, int] = (640, 480),
) -> Path:
    """Write a YOLO dataset of make_scene images and return its data.yaml.

    Scenes are drawn at scene_size (width, height) - so shape sizes are those of a
    640x480 frame - then resized so the longer side is imgsz (the size the detector
    sees), and stored as JPEG with a random quality (compression artefacts, as in
    video).  Image i of a split depends only on (seed, split, i).
    Layout: root/images/{train,val}/*.jpg, root/labels/{train,val}/*.txt, root/data.yaml.
    """
    root = Path(root)
    sw, sh = scene_size
    f = imgsz / max(sw, sh)
    out_w, out_h = round(sw * f), round(sh * f)
    for split_id, (split, count) in enumerate((("train", n_train), ("val", n_val))):
        img_dir, lbl_dir = root / "images" / split, root / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            rng = np.random.default_rng([seed, split_id, i])
            img, shapes = make_scene(rng, sw, sh)
            if (out_w, out_h) != (sw, sh):
                # Either filter: ultralytics itself resizes bilinearly at predict time.
                interp = cv2.INTER_AREA if rng.random() < 0.5 else cv2.INTER_LINEAR
                img = cv2.resize(img, (out_w, out_h), interpolation=interp)
            quality = int(rng.integers(70, 98))
            cv2.imwrite(
                str(img_dir / f"{i:06d}.jpg"),
                cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, quality],
            )
            (lbl_dir / f"{i:06d}.txt").write_text(
                "".join(line + "\n" for line in yolo_label_lines(shapes, sw, sh))
            )
    yaml_path = root / "data.yaml"
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASS_NAMES))
    yaml_path.write_text(
        f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}"
    )
    return yaml_path
