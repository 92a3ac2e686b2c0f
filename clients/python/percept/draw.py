"""Draw results onto the image they came from.

    image = percept.draw("photo.jpg", result)      # a PIL image, boxes drawn
    image.save("photo-boxes.png")

Faces get FACE_COLOR boxes (and their landmarks, when the result has them);
objects a colour per class (`color_for`) with "label confidence" above the box;
identified faces carry "subject distance" (or "unknown").
Boxes are drawn inward from their edges, so a box's edge pixels are in its colour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from percept.inputs import Color, ImageInput, to_pil
from percept.types import Box, Detection, FrameResult, ImageResult

if TYPE_CHECKING:
    from PIL import Image as PILImage

FACE_COLOR = (0, 255, 0)
LANDMARK_COLOR = (255, 255, 0)
PALETTE = (
    (255, 56, 56),
    (72, 146, 255),
    (255, 157, 41),
    (207, 41, 255),
    (30, 230, 200),
    (255, 55, 199),
    (146, 204, 23),
    (255, 226, 53),
)


def color_for(detection: Detection) -> tuple[int, int, int]:
    """The colour a detection's box is drawn in (one per class id)."""
    return PALETTE[detection.class_id % len(PALETTE)]


def pixel_box(box: Box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixels a box's edges are drawn on: rounded, and inside the image (a box
    that reaches the image's edge is drawn on its last row or column)."""
    w, h = size
    return (
        min(max(round(box.left), 0), w - 1),
        min(max(round(box.top), 0), h - 1),
        min(max(round(box.right), 0), w - 1),
        min(max(round(box.bottom), 0), h - 1),
    )


def line_width(width: int, height: int) -> int:
    return max(2, round(max(width, height) / 400))


def draw(
    image: ImageInput,
    result: ImageResult | FrameResult,
    *,
    color: Color | None = None,
    labels: bool = True,
    landmarks: bool = True,
) -> PILImage.Image:
    """`image` (anything an image input may be; `color=` for numpy arrays) as an RGB
    PIL image with `result`'s boxes drawn on it."""
    from PIL import ImageDraw, ImageFont

    canvas = to_pil(image, color).copy()
    pen = ImageDraw.Draw(canvas)
    width = line_width(*canvas.size)
    font = ImageFont.load_default(size=max(12, width * 6))

    def rectangle(box: Box, rgb: tuple[int, int, int]) -> tuple[int, int, int, int]:
        xy = pixel_box(box, canvas.size)
        pen.rectangle(xy, outline=rgb, width=width)
        return xy

    def label(left: int, top: int, text: str, rgb: tuple[int, int, int]) -> None:
        tl, tt, tr, tb = pen.textbbox((0, 0), text, font=font)
        h = tb - tt + 2 * width
        # Above the box; inside it when the box touches the image's top.
        y = top - h if top - h >= 0 else top + width
        pen.rectangle((left, y, left + tr - tl + 2 * width, y + h - 1), fill=rgb)
        pen.text((left + width, y + width - tt), text, fill=(255, 255, 255), font=font)

    for face in result.faces:
        left, top, _, _ = rectangle(face.box, FACE_COLOR)
        if landmarks and face.landmarks is not None:
            r = max(1, width // 2)
            for p in face.landmarks.points():
                pen.ellipse((p.x - r, p.y - r, p.x + r, p.y + r), fill=LANDMARK_COLOR)
        if labels and face.matches is not None:  # identified: who, or unknown
            best = face.matches[0] if face.matches else None
            text = f"{best.subject} {best.distance:.2f}" if best else "unknown"
            label(left, top, text, FACE_COLOR)
    for detection in result.detections:
        rgb = color_for(detection)
        left, top, _, _ = rectangle(detection.box, rgb)
        if labels:
            label(left, top, f"{detection.label} {detection.confidence:.2f}", rgb)
    return canvas
