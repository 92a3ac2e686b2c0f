"""The model calls the seed's workers make, and the benchmark's ceilings too.

Plain Python and numpy: no Celery, no Flask, no Percept code, so the ceilings
stay the same whatever Percept's services become.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps


def decode(data: bytes) -> np.ndarray:
    """Encoded image bytes -> RGB uint8 (H, W, 3), EXIF orientation applied,
    the way Percept decodes (PIL, then numpy)."""
    with Image.open(io.BytesIO(data)) as img:
        rgb = ImageOps.exif_transpose(img).convert("RGB")
    return np.asarray(rgb, dtype=np.uint8)


def face_recognition():
    # Imported lazily: importing face_recognition loads every dlib model.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition as fr
    return fr


def faces(rgb: np.ndarray) -> dict[str, Any]:
    """The seed's face call: face_recognition's defaults (HOG, upsample 1)."""
    boxes = face_recognition().face_locations(rgb)
    return {
        "faces": [
            {"box": {"left": left, "top": top, "right": right, "bottom": bottom}}
            for top, right, bottom, left in boxes
        ],
        "image_width": rgb.shape[1],
        "image_height": rgb.shape[0],
    }


def trained_imgsz(weights: Path) -> int:
    """The input size a .pt was trained at (what `YOLO(pt).predict` uses by default)."""
    from ultralytics import YOLO

    return int(YOLO(str(weights)).overrides.get("imgsz") or 640)


def export_onnx(weights: Path, cache: Path) -> Path:
    """The .pt exported to ONNX once at its trained size (as Percept does on
    CPU), cached under a name that includes its size in bytes."""
    from ultralytics import YOLO

    target = cache / f"{weights.stem}-{weights.stat().st_size}.onnx"
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        staged = cache / weights.name
        staged.write_bytes(weights.read_bytes())
        exported = YOLO(str(staged)).export(
            format="onnx", imgsz=trained_imgsz(weights), dynamic=True, simplify=True, verbose=False
        )
        Path(exported).replace(target)
        staged.unlink()
    return target


class Objects:
    """An ultralytics YOLO model loaded once, limited to `threads` threads, warmed.

    `weights` is the .pt; with backend "onnx" its ONNX export (in `cache`) runs
    on ONNX Runtime instead, at the same input size.
    """

    def __init__(
        self,
        weights: str | Path,
        backend: str = "pytorch",
        threads: int = 1,
        cache: Path | None = None,
    ) -> None:
        import torch
        from ultralytics import YOLO

        torch.set_num_threads(threads)
        self.threads = threads
        self.imgsz = trained_imgsz(Path(weights))
        path = str(weights)
        if backend == "onnx":
            path = str(export_onnx(Path(weights), cache or Path(weights).parent))
        self.model = YOLO(path, task="detect")
        blank = np.zeros((self.imgsz, self.imgsz, 3), np.uint8)
        self._predict(blank)  # builds the predictor
        if backend == "onnx":
            self._limit_onnx_threads(path)
        self._predict(blank)

    def _predict(self, bgr: np.ndarray):
        return self.model.predict(bgr, imgsz=self.imgsz, verbose=False)

    def _limit_onnx_threads(self, path: str) -> None:
        import onnxruntime as ort

        backend = self.model.predictor.model.backend
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = backend.session.get_providers()
        backend.session = ort.InferenceSession(path, options, providers=providers)

    def __call__(self, rgb: np.ndarray) -> dict[str, Any]:
        """The seed's object call: YOLO(weights).predict(bgr) with its defaults
        (conf 0.25, iou 0.7, max_det 300, the trained input size)."""
        result = self._predict(np.ascontiguousarray(rgb[..., ::-1]))[0]
        names = result.names
        boxes = result.boxes
        return {
            "detections": [
                {
                    "label": names[int(c)],
                    "class_id": int(c),
                    "confidence": float(p),
                    "box": dict(
                        zip(("left", "top", "right", "bottom"), map(float, xyxy), strict=True)
                    ),
                }
                for xyxy, p, c in zip(
                    boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), strict=True
                )
            ],
            "image_width": rgb.shape[1],
            "image_height": rgb.shape[0],
        }
