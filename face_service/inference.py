"""The face model: face_recognition (dlib) on numpy images, plain dataclasses out.

Functions named *_in_worker run inside worker processes (see engine.py); the
models load once per process, on import of face_recognition, in `warm_up`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np

from percept_runtime.cost import check_face_cost, detection_size
from percept_runtime.errors import InvalidInput
from percept_runtime.imaging import decode_image

logger = logging.getLogger(__name__)

DETECTORS = ("hog", "cnn")
ENCODING_SIZE = 128


@dataclass(frozen=True)
class FaceOptions:
    """How to detect, and what to compute for each face. The defaults equal the
    proto's (FaceOptions in face_service.proto, where the ranges are checked);
    a unit test keeps them equal."""

    detector: str = "hog"
    upsample: int = 1
    landmarks: bool = False
    encodings: bool = False
    detection_max_side: int = 0
    num_jitters: int = 1
    # Score each face's quality (Face.quality): set by the tracked video and
    # stream calls, which identify a track from its best face. Not in the proto.
    quality: bool = False


@dataclass(frozen=True)
class Box:
    """Face rectangle in source-image pixels."""

    left: int
    top: int
    right: int
    bottom: int


@dataclass
class Face:
    box: Box
    landmarks: dict[str, list[tuple[int, int]]] | None = None
    encoding: np.ndarray | None = None
    # How good a picture of the person this is (face_quality); None unless asked.
    quality: float | None = None


@dataclass
class ImageFaces:
    width: int
    height: int
    faces: list[Face] = field(default_factory=list)


@dataclass
class ChosenFaces:
    """The largest usable faces of an image, with their encodings (enrollment,
    verification): `found` counts every face the detector saw."""

    width: int
    height: int
    faces: list[Face]
    found: int


@dataclass(frozen=True)
class FaceMatch:
    probe_index: int
    reference_index: int
    distance: float
    match: bool


def _fr():
    # Imported lazily: importing face_recognition loads every dlib model.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition
    return face_recognition


def _scaled_locations(rgb: np.ndarray, opts: FaceOptions) -> list[tuple[int, int, int, int]]:
    """face_recognition's (top, right, bottom, left) boxes in source pixels."""
    fr = _fr()
    height, width = rgb.shape[:2]
    size = detection_size(width, height, opts.detection_max_side)  # what the cost guard priced
    if size == (width, height):
        return fr.face_locations(
            rgb, number_of_times_to_upsample=opts.upsample, model=opts.detector
        )
    import cv2

    scale = opts.detection_max_side / max(height, width)
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    boxes = []
    for top, right, bottom, left in fr.face_locations(
        small, number_of_times_to_upsample=opts.upsample, model=opts.detector
    ):
        boxes.append(
            (
                max(0, round(top / scale)),
                min(width, round(right / scale)),
                min(height, round(bottom / scale)),
                max(0, round(left / scale)),
            )
        )
    return boxes


def detect_faces(rgb: np.ndarray, opts: FaceOptions) -> ImageFaces:
    """Find faces in an RGB uint8 image; add landmarks/encodings when asked."""
    fr = _fr()
    height, width = rgb.shape[:2]
    locations = _scaled_locations(rgb, opts)
    faces = [Face(Box(left, top, right, bottom)) for top, right, bottom, left in locations]
    if locations and opts.landmarks:
        for face, marks in zip(faces, fr.face_landmarks(rgb, locations), strict=True):
            face.landmarks = marks
    if locations and opts.encodings:
        encodings = fr.face_encodings(rgb, locations, num_jitters=opts.num_jitters)
        for face, encoding in zip(faces, encodings, strict=True):
            face.encoding = encoding.astype(np.float32)
    if locations and opts.quality:
        five = fr.face_landmarks(rgb, locations, model="small")
        for face, marks in zip(faces, five, strict=True):
            face.quality = face_quality(rgb, face.box, marks)
    return ImageFaces(width, height, faces)


def face_quality(rgb: np.ndarray, box: Box, marks: dict[str, list[tuple[int, int]]]) -> float:
    """How good a face is to identify someone from, >= 0: its size (the
    shorter side, pixels) times how frontal it is (the nose tip halfway between
    the eyes: 1; turned to a profile: towards 0) times how sharp it is
    (variance of the crop's Laplacian, mapped to [0, 1))."""
    side = float(_side(box))
    if side <= 0:
        return 0.0
    left = np.mean(marks.get("left_eye", [(0, 0)]), axis=0)
    right = np.mean(marks.get("right_eye", [(0, 0)]), axis=0)
    nose = np.asarray(marks.get("nose_tip", [(0, 0)])[0], dtype=float)
    to_left, to_right = np.linalg.norm(nose - left), np.linalg.norm(nose - right)
    frontal = 1.0 - abs(to_left - to_right) / max(to_left + to_right, 1e-6)
    crop = rgb[max(0, box.top) : box.bottom, max(0, box.left) : box.right]
    if crop.size == 0:
        return 0.0
    gray = crop.mean(axis=2)
    laplacian = (
        -4 * gray[1:-1, 1:-1] + gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:]
    )
    sharpness = float(laplacian.var()) if laplacian.size else 0.0
    return side * frontal * (sharpness / (sharpness + 100.0))


def _side(box: Box) -> int:
    return min(box.right - box.left, box.bottom - box.top)


def largest_faces(
    rgb: np.ndarray, opts: FaceOptions, max_faces: int, min_side: int, purpose: str
) -> ChosenFaces:
    """Up to `max_faces` faces, largest first, each at least `min_side` pixels on
    its shorter side, with encodings (only theirs are computed). An image with no
    face, or whose largest face is too small, is InvalidInput saying so;
    `purpose` ("enrollment", "verification") names what needed it."""
    fr = _fr()
    height, width = rgb.shape[:2]
    locations = _scaled_locations(rgb, opts)
    if not locations:
        raise InvalidInput(
            f"no face found in the {width}x{height} image: {purpose} needs a photo with a "
            "clearly visible face (for small faces, try upsample=2)"
        )
    boxes = sorted(
        (Box(left, top, right, bottom) for top, right, bottom, left in locations),
        key=lambda b: (b.right - b.left) * (b.bottom - b.top),
        reverse=True,
    )
    if _side(boxes[0]) < min_side:
        b = boxes[0]
        raise InvalidInput(
            f"the largest face found is {b.right - b.left}x{b.bottom - b.top} pixels, smaller "
            f"than the {min_side} pixels a side {purpose} needs: send a photo in which the "
            "face is larger"
        )
    chosen = [b for b in boxes if _side(b) >= min_side][:max_faces]
    encodings = fr.face_encodings(
        rgb, [(b.top, b.right, b.bottom, b.left) for b in chosen], num_jitters=opts.num_jitters
    )
    faces = [
        Face(box, encoding=encoding.astype(np.float32))
        for box, encoding in zip(chosen, encodings, strict=True)
    ]
    if opts.landmarks:
        marks = fr.face_landmarks(rgb, [(b.top, b.right, b.bottom, b.left) for b in chosen])
        for face, m in zip(faces, marks, strict=True):
            face.landmarks = m
    return ChosenFaces(width, height, faces, len(boxes))


def compare_encodings(
    probe: list[np.ndarray], references: list[np.ndarray], tolerance: float
) -> list[FaceMatch]:
    """Every probe encoding against every reference, probe-major."""
    matches = []
    refs = np.asarray(references, dtype=np.float64).reshape(len(references), ENCODING_SIZE)
    for i, encoding in enumerate(probe):
        distances = (
            np.linalg.norm(refs - np.asarray(encoding, dtype=np.float64), axis=1)
            if len(refs)
            else []
        )
        for j, distance in enumerate(distances):
            matches.append(FaceMatch(i, j, float(distance), bool(distance <= tolerance)))
    return matches


def check_encoding(values, where: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if array.shape != (ENCODING_SIZE,) or not np.all(np.isfinite(array)):
        raise InvalidInput(
            f"{where} has {array.size} values: a face encoding is {ENCODING_SIZE} finite floats"
        )
    return array


# --- entry points for worker processes -------------------------------------


def warm_up() -> None:
    """Load every model and run each once, so the first real call is fast."""
    fr = _fr()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)
    fr.face_locations(img)
    fr.face_encodings(img, [(20, 140, 140, 20)])
    fr.face_landmarks(img, [(20, 140, 140, 20)])


@dataclass(frozen=True)
class CostLimits:
    """Most pixels a detection may scan (0: no limit); see percept_runtime.cost."""

    max_pixels: int = 0
    max_cnn_pixels: int = 0

    def check(self, width: int, height: int, opts: FaceOptions) -> None:
        check_face_cost(
            width,
            height,
            detector=opts.detector,
            upsample=opts.upsample,
            max_side=opts.detection_max_side,
            max_pixels=self.max_pixels,
            max_cnn_pixels=self.max_cnn_pixels,
        )


def detect_encoded_in_worker(
    data: bytes, opts: FaceOptions, max_pixels: int, limits: CostLimits = CostLimits()
) -> ImageFaces:
    """Decode an encoded image and detect: both happen in the worker process,
    the cost guard on the header before any pixel is decoded."""
    rgb = decode_image(data, max_pixels, lambda w, h: limits.check(w, h, opts))
    return detect_faces(rgb, opts)


def largest_faces_in_worker(
    data: bytes,
    opts: FaceOptions,
    max_pixels: int,
    limits: CostLimits,
    max_faces: int,
    min_side: int,
    purpose: str,
) -> ChosenFaces:
    """Decode an encoded image (the cost guard on its header first) and pick its
    largest faces (see largest_faces)."""
    rgb = decode_image(data, max_pixels, lambda w, h: limits.check(w, h, opts))
    return largest_faces(rgb, opts, max_faces, min_side, purpose)
