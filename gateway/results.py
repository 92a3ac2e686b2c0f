"""Protobuf responses -> the JSON the REST API returns (mirrors the protos)."""

from __future__ import annotations

from collections.abc import Callable
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


Result = Callable[[Any], dict[str, Any]]


def image_of(items: str, item: Callable[[Any], dict[str, Any]]) -> Result:
    """A result function: the response's repeated `items`, each through `item`,
    and the image's size."""

    def result(response) -> dict[str, Any]:
        return {
            items: [item(i) for i in getattr(response, items)],
            "image_width": response.image_width,
            "image_height": response.image_height,
        }

    return result


def framed(image: Result) -> Result:
    """The result function of one video frame: an image's, with the frame's index and time."""

    def result(response) -> dict[str, Any]:
        return {
            "frame_index": response.frame_index,
            "timestamp": response.timestamp,
            **image(response),
        }

    return result


face_image = image_of("faces", face)  # DetectFacesResponse
face_frame = framed(face_image)  # DetectFacesInVideoResponse
object_image = image_of("detections", detection)  # DetectObjectsResponse
object_frame = framed(object_image)  # DetectObjectsInVideoResponse


# --- the generic shape: any backend's boxes, labels, keypoints, masks, tracks -----------


def generic(items: str = "items") -> Result:
    """The result function of a response in the generic shape, which the console
    draws and the SDK reads (GenericResult): the response has `image_width`,
    `image_height` and a repeated message field `items` (a video frame also
    `frame_index` and `timestamp`). Each item may have any of: `box` (left,
    top, right, bottom), `label`, `score`, `keypoints` (repeated: name, x, y,
    score), `mask` (repeated points x, y: a polygon in pixels), `track_id`;
    the JSON carries the ones it has and sets."""
    image = image_of(items, generic_item)
    frame = framed(image)

    def result(response) -> dict[str, Any]:
        return (frame if "frame_index" in response.DESCRIPTOR.fields_by_name else image)(response)

    return result


def generic_item(item) -> dict[str, Any]:
    """One item of the generic shape (see `generic`)."""
    has = item.DESCRIPTOR.fields_by_name
    out: dict[str, Any] = {}
    if "box" in has and item.HasField("box"):
        out["box"] = box(item.box)
    if "label" in has and item.label:
        out["label"] = item.label
    if "score" in has:
        out["score"] = round(item.score, 6)
    if "keypoints" in has and item.keypoints:
        out["keypoints"] = [_keypoint(k) for k in item.keypoints]
    if "mask" in has and item.mask:
        out["mask"] = [[p.x, p.y] for p in item.mask]
    if "track_id" in has and item.track_id:
        out["track_id"] = item.track_id
    return out


def _keypoint(k) -> dict[str, Any]:
    has = k.DESCRIPTOR.fields_by_name
    out: dict[str, Any] = {"x": k.x, "y": k.y}
    if "name" in has and k.name:
        out["name"] = k.name
    if "score" in has:
        out["score"] = round(k.score, 6)
    return out


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


# DetectFacesInVideoResponse of an identifying call.
identification_frame = framed(image_of("faces", identified_face))


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
