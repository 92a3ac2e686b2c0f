"""The object model: ultralytics YOLO (.pt or .onnx) on numpy images, plain
dataclasses out.

Inference goes through ultralytics' own predictor, so results equal a direct
`YOLO(weights).predict(...)`. Threads are set deliberately (torch intra-op
threads, and an ONNX Runtime session rebuilt with explicit thread counts), so
several replicas on one machine don't fight over cores.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from percept_runtime.errors import InvalidInput

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "pytorch", "onnx")


class WeightsUnavailable(RuntimeError):
    """The configured weights cannot be found or fetched: the server must not start."""


@dataclass(frozen=True)
class DetectOptions:
    """Thresholds and filters for one image (class ids already resolved). The
    defaults equal the proto's (DetectionOptions, where the ranges are checked);
    a unit test keeps them equal."""

    confidence: float = 0.25
    iou: float = 0.7
    classes: tuple[int, ...] | None = None
    max_detections: int = 300


@dataclass(frozen=True)
class Detection:
    class_id: int
    label: str
    confidence: float
    left: float
    top: float
    right: float
    bottom: float


@dataclass
class ImageDetections:
    width: int
    height: int
    detections: list[Detection] = field(default_factory=list)


@dataclass(frozen=True)
class ModelConfig:
    """What to load and how to run it."""

    model: str
    name: str = ""  # reported model name; defaults to the weights' stem
    backend: str = "auto"
    device: str = "cpu"
    imgsz: int = 0  # 0: the size the model was trained/exported at
    threads: int = 1
    cache_dir: Path = Path.home() / ".cache" / "percept"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    backend: str  # "pytorch" or "onnxruntime"
    device: str
    input_size: int
    class_names: tuple[str, ...]
    weights: str
    task: str

    def resolve_classes(self, names: list[str], ids: list[int]) -> tuple[int, ...] | None:
        """Class filter from names and ids (union); None keeps every class."""
        if not names and not ids:
            return None
        wanted = set()
        for name in names:
            if name not in self.class_names:
                raise InvalidInput(
                    f"class name {name!r} is unknown: this model's classes are {list(self.class_names)}"
                )
            wanted.add(self.class_names.index(name))
        for class_id in ids:
            if not 0 <= class_id < len(self.class_names):
                raise InvalidInput(
                    f"class id {class_id} is out of range: this model has ids 0..{len(self.class_names) - 1}"
                )
            wanted.add(class_id)
        return tuple(sorted(wanted))


def _yolo(path: str | Path):
    from ultralytics import YOLO

    return YOLO(str(path), task="detect")


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def _trained_imgsz(model) -> int:
    args = getattr(model.model, "args", None) or {}
    imgsz = args.get("imgsz") if isinstance(args, dict) else None
    if isinstance(imgsz, list | tuple):
        imgsz = max(imgsz)
    return int(imgsz or 640)


def locate_weights(model: str) -> Path:
    """The weights file for `model`: a path, or a bare ultralytics name that
    ultralytics downloads when the network allows. Raises WeightsUnavailable."""
    path = Path(model).expanduser()
    if path.is_file():
        return path.resolve()
    if path.suffix not in (".pt", ".onnx"):
        raise WeightsUnavailable(f"OBJECT_MODEL={model!r}: weights must be a .pt or .onnx file")
    if path.parent != Path("."):
        raise WeightsUnavailable(
            f"OBJECT_MODEL={model!r}: no such file. Give the path of a .pt or .onnx detection model "
            "(for example object_service/models/shapes-yolo.pt, or your own trained weights)"
        )
    try:
        yolo = _yolo(model)  # ultralytics fetches official weights by name when online
    except Exception as exc:  # noqa: BLE001 - any download failure means the same to the user
        raise WeightsUnavailable(
            f"OBJECT_MODEL={model!r} is not a local file and could not be downloaded ({exc}). "
            "Without network access, put the weights on disk and set OBJECT_MODEL to their path "
            "(or pass --model PATH)"
        ) from None
    return Path(yolo.ckpt_path or model).resolve()


def prepare(config: ModelConfig) -> ModelConfig:
    """Resolve the weights and, for the ONNX backend, export the .pt once to
    the cache (reused on the next start). Returns the config to load."""
    weights = locate_weights(config.model)
    backend = config.backend
    if backend == "auto":
        # Measured on CPU: ONNX Runtime ~2x faster than PyTorch for YOLOv8n.
        backend = "onnx" if config.device == "cpu" or weights.suffix == ".onnx" else "pytorch"
    if backend not in ("pytorch", "onnx"):
        raise WeightsUnavailable(
            f"OBJECT_BACKEND={config.backend!r}: use one of {', '.join(BACKENDS)}"
        )
    if weights.suffix == ".onnx":
        if backend == "pytorch":
            raise WeightsUnavailable(f"{weights} is ONNX: the pytorch backend needs .pt weights")
        return replace(config, model=str(weights), name=weights.stem, backend="onnx")
    if backend == "pytorch":
        return replace(config, model=str(weights), name=weights.stem, backend="pytorch")
    model = _yolo(weights)
    imgsz = config.imgsz or _trained_imgsz(model)
    cache = Path(config.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{weights.stem}-{_sha(weights)}-{imgsz}.onnx"
    if target.is_file():
        logger.info("using cached ONNX export %s", target)
    else:
        work = cache / f".export-{os.getpid()}"
        work.mkdir(exist_ok=True)
        try:
            staged = work / weights.name
            shutil.copy2(weights, staged)
            logger.info(
                "exporting %s to ONNX at imgsz %d (once; cached in %s)", weights, imgsz, cache
            )
            exported = _yolo(staged).export(
                format="onnx", imgsz=imgsz, dynamic=True, simplify=True, verbose=False
            )
            os.replace(exported, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return replace(config, model=str(target), name=weights.stem, backend="onnx", imgsz=imgsz)


class Detector:
    """A loaded YOLO model that detects objects in RGB images."""

    def __init__(self, config: ModelConfig) -> None:
        import torch

        torch.set_num_threads(max(1, config.threads))
        self.config = config
        self.model = _yolo(config.model)
        self.backend = "onnxruntime" if config.model.endswith(".onnx") else "pytorch"
        self.imgsz = config.imgsz or self._model_imgsz()
        self.max_batch = 0  # 0 = unlimited; set from the ONNX input shape below
        blank = np.zeros((self.imgsz, self.imgsz, 3), np.uint8)
        self._predict([blank], DetectOptions())  # builds the predictor
        if self.backend == "onnxruntime":
            self._set_onnx_threads()
        self._predict([blank], DetectOptions())  # warm
        names = self.model.names
        self.class_names = tuple(names[i] for i in sorted(names))
        self.info = ModelInfo(
            name=config.name or Path(config.model).stem,
            backend=self.backend,
            device=config.device,
            input_size=self.imgsz,
            class_names=self.class_names,
            weights=config.model,
            task=self.model.task,
        )

    def _model_imgsz(self) -> int:
        if self.config.model.endswith(".onnx"):
            import onnx

            meta = {
                p.key: p.value
                for p in onnx.load(self.config.model, load_external_data=False).metadata_props
            }
            sizes = [int(v) for v in meta.get("imgsz", "[640]").strip("[]").split(",") if v.strip()]
            return max(sizes)
        return _trained_imgsz(self.model)

    def _set_onnx_threads(self) -> None:
        import onnxruntime as ort

        backend = self.model.predictor.model.backend
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, self.config.threads)
        options.inter_op_num_threads = 1
        # Spinning threads steal the core from other replicas and the gRPC loop.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = backend.session.get_providers()
        backend.session = ort.InferenceSession(self.config.model, options, providers=providers)
        batch_dim = backend.session.get_inputs()[0].shape[0]
        self.max_batch = batch_dim if isinstance(batch_dim, int) else 0

    def _predict(self, bgr_images: list[np.ndarray], opts: DetectOptions):
        return self.model.predict(
            bgr_images,
            imgsz=self.imgsz,
            conf=opts.confidence,
            iou=opts.iou,
            classes=list(opts.classes) if opts.classes is not None else None,
            max_det=opts.max_detections,
            device=self.config.device,
            verbose=False,
        )

    def detect(self, images: list[np.ndarray], opts: DetectOptions) -> list[ImageDetections]:
        """Detect in RGB uint8 images, batched in one forward pass when the model allows."""
        if opts.classes == ():
            return [ImageDetections(img.shape[1], img.shape[0]) for img in images]
        step = self.max_batch or len(images)
        out: list[ImageDetections] = []
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            results = self._predict([np.ascontiguousarray(img[..., ::-1]) for img in chunk], opts)
            for img, result in zip(chunk, results, strict=True):
                boxes = result.boxes
                xyxy = boxes.xyxy.cpu().numpy().tolist()
                conf = boxes.conf.cpu().numpy().tolist()
                cls = boxes.cls.cpu().numpy().astype(int).tolist()
                out.append(
                    ImageDetections(
                        img.shape[1],
                        img.shape[0],
                        [
                            Detection(c, self.class_names[c], p, *box)
                            for box, p, c in zip(xyxy, conf, cls, strict=True)
                        ],
                    )
                )
        return out


# --- entry points for worker processes -------------------------------------

_DETECTOR: Detector | None = None


def load_in_worker(config: ModelConfig) -> None:
    global _DETECTOR
    _DETECTOR = Detector(config)


def info_in_worker() -> ModelInfo:
    assert _DETECTOR is not None
    return _DETECTOR.info


def detect_encoded_in_worker(data: bytes, opts: DetectOptions, max_pixels: int) -> ImageDetections:
    from percept_runtime.imaging import decode_image

    assert _DETECTOR is not None
    return _DETECTOR.detect([decode_image(data, max_pixels)], opts)[0]


def detect_frames_in_worker(frames: list[np.ndarray], opts: DetectOptions) -> list[ImageDetections]:
    assert _DETECTOR is not None
    return _DETECTOR.detect(frames, opts)
