"""Object service settings: env OBJECT_*, flags for the common few."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from object_service.inference import ModelConfig
from percept_runtime.settings import Port, ServerSettings, part_settings

DEMO_MODEL = Path(__file__).resolve().parent / "models" / "shapes-yolo.pt"


class ObjectSettings(ServerSettings):
    """Percept object service (gRPC). Every setting is also env OBJECT_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="OBJECT_", extra="ignore")

    port: Port = 50052
    """gRPC port (0 picks a free one)."""
    model: str = "yolo11n.pt"
    """Weights: a .pt/.onnx path, or an ultralytics name (fetched when online)."""
    backend: Literal["auto", "pytorch", "onnx"] = "auto"
    """auto: ONNX Runtime on CPU, PyTorch on CUDA."""
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$")
    """cpu or cuda:N."""
    imgsz: int = Field(0, ge=0)
    """Inference size, pixels; 0 uses the model's own."""
    threads: int = Field(0, ge=0)
    """Intra-op threads per worker; 0 splits the cores over the workers."""
    cache_dir: Path = Path.home() / ".cache" / "percept"
    """Where ONNX exports of .pt weights are cached."""
    video_batch: int = Field(1, ge=1, le=64)
    """Video frames per inference call."""

    def engine_config(self) -> ModelConfig:
        threads = self.threads or max(1, (os.cpu_count() or 1) // self.workers)
        return part_settings(self, ModelConfig, threads=threads)
