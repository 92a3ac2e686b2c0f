"""Protobuf responses -> the JSON the REST API returns (mirrors the protos)."""

from __future__ import annotations

from typing import Any


def box(b) -> dict[str, float]:
    return {"left": b.left, "top": b.top, "right": b.right, "bottom": b.bottom}


def face(f) -> dict[str, Any]:
    out: dict[str, Any] = {"box": box(f.box)}
    if f.HasField("landmarks"):
        out["landmarks"] = {
            part.name: [[p.x, p.y] for p in getattr(f.landmarks, part.name)]
            for part in f.landmarks.DESCRIPTOR.fields
        }
    if len(f.encoding):
        out["encoding"] = list(f.encoding)
    return out


def detection(d) -> dict[str, Any]:
    return {"label": d.label, "class_id": d.class_id, "confidence": d.confidence, "box": box(d.box)}


def image_result(response) -> dict[str, Any]:
    """DetectFacesResponse or DetectObjectsResponse."""
    if hasattr(response, "faces"):
        items = {"faces": [face(f) for f in response.faces]}
    else:
        items = {"detections": [detection(d) for d in response.detections]}
    return {**items, "image_width": response.image_width, "image_height": response.image_height}


def frame_result(response) -> dict[str, Any]:
    """DetectFacesInVideoResponse or DetectObjectsInVideoResponse."""
    return {
        "frame_index": response.frame_index,
        "timestamp": response.timestamp,
        **image_result(response),
    }
