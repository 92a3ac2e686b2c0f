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
    if f.track_id:
        out["track_id"] = f.track_id
    return out


def detection(d) -> dict[str, Any]:
    out = {"label": d.label, "class_id": d.class_id, "confidence": d.confidence, "box": box(d.box)}
    if d.track_id:
        out["track_id"] = d.track_id
    return out


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


def video_summary(summary) -> dict[str, Any]:
    """percept.common.v1.VideoSummary: how a video ended (partial: early)."""
    return {
        "partial": summary.partial,
        "reason": summary.reason or None,
        "expected_frames": summary.expected_frames or None,
        "processed_frames": summary.processed_frames,
        "last_frame_index": summary.last_frame_index,
        "tracks": [track(t) for t in summary.tracks],
        "gallery_searches": summary.gallery_searches,
    }


def track(t) -> dict[str, Any]:
    """percept.common.v1.TrackSummary: one track over the video."""
    out: dict[str, Any] = {
        "track_id": t.track_id,
        "first_frame_index": t.first_frame_index,
        "first_timestamp": t.first_timestamp,
        "last_frame_index": t.last_frame_index,
        "last_timestamp": t.last_timestamp,
        "frames_seen": t.frames_seen,
        "best_frame_index": t.best_frame_index,
        "best_box": box(t.best_box),
        "best_score": round(t.best_score, 6),
    }
    if t.label:
        out["label"], out["class_id"] = t.label, t.class_id
    if t.face_id:
        out.update(subject=t.subject, face_id=t.face_id, distance=round(t.distance, 6))
    return out


# --- face collections ------------------------------------------------------------------


def match(m) -> dict[str, Any]:
    return {"face_id": m.face_id, "subject": m.subject, "distance": round(m.distance, 6)}


def identified_face(f) -> dict[str, Any]:
    """A face with its matches, closest first, and `subject`: the closest
    match's, or None when the face is unknown."""
    out = face(f)
    matches = [match(m) for m in f.matches]
    out["matches"] = matches
    out["subject"] = matches[0]["subject"] if matches else None
    return out


def identification_result(response) -> dict[str, Any]:
    """IdentifyFacesResponse."""
    return {
        "faces": [identified_face(f) for f in response.faces],
        "image_width": response.image_width,
        "image_height": response.image_height,
        "threshold": round(response.threshold, 6),
    }


def identification_frame(response) -> dict[str, Any]:
    """DetectFacesInVideoResponse of an identifying call."""
    return {
        "frame_index": response.frame_index,
        "timestamp": response.timestamp,
        "faces": [identified_face(f) for f in response.faces],
        "image_width": response.image_width,
        "image_height": response.image_height,
    }


def _time(ts) -> str:
    return ts.ToDatetime().isoformat(timespec="milliseconds") + "Z"


def collection(c) -> dict[str, Any]:
    return {
        "collection_id": c.collection_id,
        "description": c.description,
        "created_at": _time(c.created_at),
        "face_count": c.face_count,
        "subject_count": c.subject_count,
    }


def enrolled_face(f) -> dict[str, Any]:
    return {
        "face_id": f.face_id,
        "subject": f.subject,
        "external_id": f.external_id or None,
        "box": box(f.box) if f.HasField("box") else None,
        "created_at": _time(f.created_at),
    }
