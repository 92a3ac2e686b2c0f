"""Request options of the detect routes, mirroring the gRPC options.

Given as multipart form fields or query parameters (a form field wins), and
validated here, so nothing reaches a backend that the gateway can reject itself.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FaceOptions(_Options):
    detector: Literal["hog", "cnn"] = Field(
        "hog", description="Face detector: hog (fast) or cnn (accurate, slow on CPU)."
    )
    upsample: int = Field(
        1, ge=0, le=3, description="Times to upsample before detecting, to find smaller faces."
    )
    landmarks: bool = Field(False, description="Return the 68 facial landmarks of each face.")
    encodings: bool = Field(False, description="Return the 128-d encoding of each face.")
    detection_max_side: int = Field(
        0, ge=0, le=10_000, description="Detect on a copy at most this long (0: full size)."
    )
    num_jitters: int = Field(1, ge=1, le=100, description="Re-samples per face when encoding.")

    @field_validator("detection_max_side")
    @classmethod
    def _at_least_32(cls, value: int) -> int:
        if 0 < value < 32:
            raise ValueError("use 0 (full size) or at least 32 pixels")
        return value


class ObjectOptions(_Options):
    confidence_threshold: float = Field(
        0.25, ge=0.0, le=1.0, description="Smallest confidence kept, [0, 1]."
    )
    iou_threshold: float = Field(0.7, gt=0.0, le=1.0, description="NMS IoU threshold, (0, 1].")
    classes: str = Field(
        "", description="Comma-separated class names or ids to keep (empty keeps all)."
    )
    max_detections: int = Field(300, ge=1, le=1000, description="Most detections per image.")

    def to_task(self) -> dict[str, Any]:
        names, ids = [], []
        for item in (c.strip() for c in self.classes.split(",")):
            if item:
                (ids if item.isdigit() else names).append(int(item) if item.isdigit() else item)
        return {
            "confidence_threshold": self.confidence_threshold,
            "iou_threshold": self.iou_threshold,
            "class_names": names,
            "class_ids": ids,
            "max_detections": self.max_detections,
        }


class VideoOptions(_Options):
    frame_stride: int = Field(1, ge=1, le=100_000, description="Process every Nth frame.")
    max_frames: int = Field(
        0, ge=0, le=1_000_000, description="Stop after this many processed frames (0: no limit)."
    )


class FaceVideoOptions(FaceOptions, VideoOptions):
    pass


class ObjectVideoOptions(ObjectOptions, VideoOptions):
    pass


OPTIONS = {
    ("face_detection", "image"): FaceOptions,
    ("face_detection", "video"): FaceVideoOptions,
    ("object_detection", "image"): ObjectOptions,
    ("object_detection", "video"): ObjectVideoOptions,
}


def task_options(model: _Options) -> dict[str, Any]:
    if isinstance(model, ObjectOptions):
        out = model.to_task()
        if isinstance(model, VideoOptions):
            out.update(frame_stride=model.frame_stride, max_frames=model.max_frames)
        return out
    return model.model_dump()
