"""Inputs for the TypeScript client's tests, and what the models say about them
when called directly (no server), so the tests compare against computed truth.

Run by test/support/fixtures.ts as `python fixtures.py OUT_DIR` with the repo
and gen/ on PYTHONPATH; writes the files and OUT_DIR/fixtures.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import face_recognition
import numpy as np
import ultralytics
from skimage import data

from harness.faces import FACE_PATCH
from harness.images import encode
from harness.shapes import HELD_OUT_SEED, scene_of_reliable_size
from harness.videos import moving_patch_video, moving_shapes_video, read_frames
from object_service import synthetic
from percept_runtime.errors import InvalidInput
from percept_runtime.imaging import decode_image

VIDEO_FRAMES = 6
LIVE_FRAMES = 4


def ltrb(top: int, right: int, bottom: int, left: int) -> list[int]:
    return [left, top, right, bottom]


def faces_in(rgb: np.ndarray) -> list[list[int]]:
    """face_recognition's own boxes (HOG, upsample 1: the service's defaults), as [l, t, r, b]."""
    return [ltrb(*location) for location in face_recognition.face_locations(rgb)]


def shape_json(shape: synthetic.Shape) -> dict:
    return {
        "label": shape.name,
        "classId": shape.class_id,
        "box": [shape.left, shape.top, shape.right, shape.bottom],
    }


def invalid_input_message(content: bytes) -> str:
    try:
        decode_image(content, max_pixels=40_000_000)
    except InvalidInput as exc:
        return exc.message
    raise AssertionError("expected the bytes to be refused")


def main(out: Path) -> None:
    assets = Path(ultralytics.__file__).parent / "assets"
    zidane = assets / "zidane.jpg"
    zidane_rgb = face_recognition.load_image_file(zidane)
    zidane_locations = face_recognition.face_locations(zidane_rgb)
    zidane_encodings = face_recognition.face_encodings(zidane_rgb, zidane_locations)
    zidane_landmarks = face_recognition.face_landmarks(zidane_rgb, zidane_locations)

    patch = np.ascontiguousarray(data.astronaut()[FACE_PATCH])
    face_video = out / "moving_face.avi"
    moving_patch_video(face_video, patch, n_frames=VIDEO_FRAMES)
    live = []
    for i, frame in enumerate(read_frames(face_video)[:LIVE_FRAMES]):
        path = out / f"live_{i}.jpg"
        path.write_bytes(encode(frame, ".jpg"))
        live.append({"path": str(path), "faces": faces_in(face_recognition.load_image_file(path))})

    scene_rgb, scene_shapes = scene_of_reliable_size(np.random.default_rng(HELD_OUT_SEED))
    scene = out / "scene.png"
    scene.write_bytes(encode(scene_rgb, ".png"))
    shapes_video = out / "moving_shapes.avi"
    shapes_truth = moving_shapes_video(shapes_video, n_frames=VIDEO_FRAMES)

    not_an_image = b"this is not an image"
    truncated = zidane.read_bytes()[: zidane.stat().st_size // 2]
    (out / "truncated.jpg").write_bytes(truncated)

    fixtures = {
        "zidane": {
            "path": str(zidane),
            "width": zidane_rgb.shape[1],
            "height": zidane_rgb.shape[0],
            "faces": [ltrb(*location) for location in zidane_locations],
            "encodings": [e.tolist() for e in zidane_encodings],
            "landmarks": zidane_landmarks,
        },
        "faceVideo": {
            "path": str(face_video),
            "faces": [faces_in(frame) for frame in read_frames(face_video)],
            "fps": cv2.VideoCapture(str(face_video)).get(cv2.CAP_PROP_FPS),
        },
        "liveFrames": live,
        "scene": {
            "path": str(scene),
            "width": scene_rgb.shape[1],
            "height": scene_rgb.shape[0],
            "shapes": [shape_json(s) for s in scene_shapes],
        },
        "shapesVideo": {
            "path": str(shapes_video),
            "shapes": [[shape_json(s) for s in frame] for frame in shapes_truth],
        },
        "classNames": list(synthetic.CLASS_NAMES),
        "badImages": [
            {"path": str(out / "not_an_image.txt"), "message": invalid_input_message(not_an_image)},
            {"path": str(out / "truncated.jpg"), "message": invalid_input_message(truncated)},
        ],
    }
    (out / "not_an_image.txt").write_bytes(not_an_image)
    (out / "fixtures.json").write_text(json.dumps(fixtures, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
