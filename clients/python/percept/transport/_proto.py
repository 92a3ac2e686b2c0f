"""Protobuf <-> percept.types, for the gRPC clients (sync and asyncio alike)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from percept.common.v1 import image_pb2, video_pb2
from percept.face.v1 import face_service_pb2 as face_pb
from percept.object.v1 import object_service_pb2 as object_pb
from percept.options import FaceOptions, ObjectOptions, check_media
from percept.types import (
    LANDMARK_PARTS,
    Box,
    Collection,
    CollectionPage,
    Comparison,
    Detection,
    EnrolledFace,
    Enrollment,
    Face,
    FaceMatch,
    FacePage,
    FrameResult,
    Identification,
    ImageResult,
    Kind,
    Landmarks,
    Match,
    ModelInfo,
    Point,
    Track,
    Verification,
    VideoSummary,
    VideoURI,
)

FACE_SERVICE = "percept.face.v1.FaceService"
OBJECT_SERVICE = "percept.object.v1.ObjectService"
_DETECTORS = {"hog": face_pb.DETECTOR_HOG, "cnn": face_pb.DETECTOR_CNN}
_BACKENDS = {object_pb.BACKEND_PYTORCH: "pytorch", object_pb.BACKEND_ONNXRUNTIME: "onnxruntime"}


# --- requests --------------------------------------------------------------------------------


def image(content: bytes) -> image_pb2.Image:
    return image_pb2.Image(content=content)


def video(source: bytes | VideoURI) -> video_pb2.VideoSource:
    if isinstance(source, VideoURI):
        return video_pb2.VideoSource(uri=source.uri)
    return video_pb2.VideoSource(content=source)


def face_options(o: FaceOptions) -> face_pb.FaceOptions:
    """Only what is set: unset fields keep the service's defaults."""
    msg = face_pb.FaceOptions()
    if o.detector is not None:
        if o.detector not in _DETECTORS:
            raise ValueError(f"detector must be 'hog' or 'cnn' (got {o.detector!r})")
        msg.detector = _DETECTORS[o.detector]
    if o.upsample is not None:
        msg.upsample = o.upsample
    if o.landmarks is not None:
        msg.return_landmarks = o.landmarks
    if o.encodings is not None:
        msg.return_encodings = o.encodings
    if o.detection_max_side is not None:
        msg.detection_max_side = o.detection_max_side
    if o.num_jitters is not None:
        msg.num_jitters = o.num_jitters
    return msg


def object_options(o: ObjectOptions) -> object_pb.DetectionOptions:
    msg = object_pb.DetectionOptions()
    if o.confidence_threshold is not None:
        msg.confidence_threshold = o.confidence_threshold
    if o.iou_threshold is not None:
        msg.iou_threshold = o.iou_threshold
    for item in o.classes or ():
        if isinstance(item, int) or (str(item).isascii() and str(item).isdigit()):
            msg.class_ids.append(int(item))
        else:
            msg.class_names.append(str(item))
    if o.max_detections is not None:
        msg.max_detections = o.max_detections
    return msg


_TRACKERS = {
    "bytetrack": video_pb2.TRACKER_TYPE_BYTETRACK,
    "botsort": video_pb2.TRACKER_TYPE_BOTSORT,
    "off": video_pb2.TRACKER_TYPE_OFF,
}


def tracker_options(o: FaceOptions | ObjectOptions) -> video_pb2.TrackerOptions:
    """Only what is set: unset fields keep the service's defaults."""
    msg = video_pb2.TrackerOptions()
    if o.tracker is not None:
        if o.tracker not in _TRACKERS:
            raise ValueError(f"tracker must be one of {', '.join(_TRACKERS)} (got {o.tracker!r})")
        msg.tracker = _TRACKERS[o.tracker]
    if o.lost_track_frames is not None:
        msg.lost_track_frames = o.lost_track_frames
    if o.match_threshold is not None:
        msg.match_threshold = o.match_threshold
    return msg


def identify_fields(collection_id: str | None, top_k: int | None, threshold: float | None):
    """The identification fields of a face request (none when not identifying)."""
    if collection_id is None:
        if top_k is not None or threshold is not None:
            raise ValueError("top_k and threshold need a collection_id")
        return {}
    if not collection_id:
        raise ValueError("collection_id is empty")
    fields: dict = {"collection_id": collection_id}
    if top_k is not None:
        fields["top_k"] = top_k
    if threshold is not None:
        fields["threshold"] = threshold
    return fields


def detect_request(kind: Kind, content: bytes, options: FaceOptions | ObjectOptions):
    check_media(options, "image")
    if kind is Kind.FACE:
        return face_pb.DetectFacesRequest(image=image(content), options=face_options(options))  # type: ignore[arg-type]
    return object_pb.DetectObjectsRequest(image=image(content), options=object_options(options))  # type: ignore[arg-type]


def video_request(
    kind: Kind,
    source: bytes | VideoURI,
    options: FaceOptions | ObjectOptions,
    identify: dict | None = None,
):
    common = {
        "video": video(source),
        "frame_stride": options.frame_stride or 0,
        "max_frames": options.max_frames or 0,
        "tracker": tracker_options(options),
    }
    if kind.faces:
        return face_pb.DetectFacesInVideoRequest(
            **common,
            options=face_options(options),
            **(identify or {}),  # type: ignore[arg-type]
        )
    return object_pb.DetectObjectsInVideoRequest(**common, options=object_options(options))  # type: ignore[arg-type]


def stream_request(
    kind: Kind,
    content: bytes,
    options: FaceOptions | ObjectOptions | None,
    identify: dict | None = None,
):
    """One live frame; `options` (and `identify`) only on the first (the service keeps them)."""
    if kind.faces:
        msg = face_pb.StreamFacesRequest(image=image(content), **(identify or {}))
        if options is not None:
            msg.options.CopyFrom(face_options(options))  # type: ignore[arg-type]
            msg.tracker.CopyFrom(tracker_options(options))
        return msg
    msg = object_pb.StreamObjectsRequest(image=image(content))
    if options is not None:
        msg.options.CopyFrom(object_options(options))  # type: ignore[arg-type]
        msg.tracker.CopyFrom(tracker_options(options))
    return msg


def compare_request(
    probe: bytes,
    reference: bytes | None,
    encodings: Sequence[Sequence[float]] | None,
    tolerance: float | None,
    options: FaceOptions,
) -> face_pb.CompareFacesRequest:
    if (reference is None) == (encodings is None):
        raise ValueError("give either a reference image or reference encodings")
    msg = face_pb.CompareFacesRequest(probe=image(probe), options=face_options(options))
    if reference is not None:
        msg.reference_image.CopyFrom(image(reference))
    else:
        msg.reference_encodings.CopyFrom(
            face_pb.FaceEncodingList(
                encodings=[face_pb.FaceEncoding(values=list(e)) for e in encodings or ()]
            )
        )
    if tolerance is not None:
        msg.tolerance = tolerance
    return msg


# --- responses -------------------------------------------------------------------------------


def box(b) -> Box:
    return Box(b.left, b.top, b.right, b.bottom)


def face(f, identifying: bool = False) -> Face:
    """A Face; `identifying`: the call identified, so `matches` is set (maybe empty)."""
    landmarks = None
    if f.HasField("landmarks"):
        landmarks = Landmarks(
            **{
                name: tuple(Point(p.x, p.y) for p in getattr(f.landmarks, name))
                for name in LANDMARK_PARTS
            }
        )
    matches = tuple(match(m) for m in f.matches) if identifying else None
    encoding = tuple(f.encoding) if len(f.encoding) else None
    return Face(box(f.box), landmarks, encoding, matches, f.track_id or None)


def match(m) -> Match:
    return Match(m.face_id, m.subject, round(m.distance, 6))


def detection(d) -> Detection:
    return Detection(d.label, d.class_id, d.confidence, box(d.box), d.track_id or None)


def _items(response, kind: Kind) -> dict:
    if hasattr(response, "faces"):
        return {"faces": tuple(face(f, kind is Kind.IDENTIFY) for f in response.faces)}
    return {"detections": tuple(detection(d) for d in response.detections)}


def image_result(response, kind: Kind) -> ImageResult:
    threshold = round(response.threshold, 6) if kind is Kind.IDENTIFY else None
    return ImageResult(
        kind,
        response.image_width,
        response.image_height,
        threshold=threshold,
        **_items(response, kind),
    )


def frame_result(response, kind: Kind) -> FrameResult:
    """A video frame (with timestamp and expected_frames) or a live frame (without)."""
    return FrameResult(
        kind,
        response.frame_index,
        response.timestamp if hasattr(response, "timestamp") else None,
        response.image_width,
        response.image_height,
        expected_frames=getattr(response, "expected_frames", 0) or None,
        summary=video_summary(response.summary) if _has(response, "summary") else None,
        **_items(response, kind),
    )


def _has(response, name: str) -> bool:
    return name in response.DESCRIPTOR.fields_by_name and response.HasField(name)


def video_summary(summary) -> VideoSummary:
    """percept.common.v1.VideoSummary, as the REST result's `summary` reads."""
    return VideoSummary(
        summary.partial,
        summary.reason or None,
        summary.expected_frames or None,
        summary.processed_frames,
        summary.last_frame_index,
        tuple(track(t) for t in summary.tracks),
        summary.gallery_searches,
    )


def track(t) -> Track:
    return Track(
        t.track_id,
        t.first_frame_index,
        t.first_timestamp,
        t.last_frame_index,
        t.last_timestamp,
        t.frames_seen,
        t.best_frame_index,
        box(t.best_box),
        round(t.best_score, 6),
        t.label or None,
        t.class_id if t.label else None,
        t.subject if t.face_id else None,
        t.face_id or None,
        round(t.distance, 6) if t.face_id else None,
    )


def comparison(response) -> Comparison:
    return Comparison(
        tuple(face(f) for f in response.probe_faces),
        tuple(face(f) for f in response.reference_faces),
        tuple(
            FaceMatch(m.probe_index, m.reference_index, m.distance, m.match)
            for m in response.matches
        ),
        response.tolerance,
    )


def model_info(response) -> ModelInfo:
    return ModelInfo(
        response.model_name,
        _BACKENDS.get(response.backend, "unspecified"),
        response.device,
        response.input_size,
        tuple(response.class_names),
        response.weights,
        response.task,
    )


# --- face collections ------------------------------------------------------------------------


def _time(ts) -> datetime | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def collection(c) -> Collection:
    return Collection(
        c.collection_id, c.description, _time(c.created_at), c.face_count, c.subject_count
    )


def collection_page(response) -> CollectionPage:
    return CollectionPage(
        tuple(collection(c) for c in response.collections), response.next_page_token or None
    )


def enrolled_face(f) -> EnrolledFace:
    return EnrolledFace(
        f.face_id,
        f.subject,
        f.external_id or None,
        box(f.box) if f.HasField("box") else None,
        _time(f.created_at),
    )


def face_page(response) -> FacePage:
    return FacePage(
        tuple(enrolled_face(f) for f in response.faces), response.next_page_token or None
    )


def enrollment(response) -> Enrollment:
    return Enrollment(
        tuple(enrolled_face(f) for f in response.faces),
        response.faces_found,
        response.image_width,
        response.image_height,
    )


def enroll_request(
    collection_id: str,
    content: bytes,
    subject: str,
    external_id: str | None,
    max_faces: int | None,
    options: FaceOptions,
) -> face_pb.EnrollFacesRequest:
    check_media(options, "image")
    return face_pb.EnrollFacesRequest(
        collection_id=collection_id,
        image=image(content),
        subject=subject,
        external_id=external_id or "",
        max_faces=max_faces or 0,
        options=face_options(options),
    )


def identify_request(
    collection_id: str,
    content: bytes,
    top_k: int | None,
    threshold: float | None,
    options: FaceOptions,
) -> face_pb.IdentifyFacesRequest:
    check_media(options, "image")
    return face_pb.IdentifyFacesRequest(
        image=image(content),
        options=face_options(options),
        **identify_fields(collection_id, top_k, threshold),
    )


def search_request(collection_id, face_id, top_k, threshold) -> face_pb.SearchFacesRequest:
    return face_pb.SearchFacesRequest(
        face_id=face_id, **identify_fields(collection_id, top_k, threshold)
    )


def identification(response, face_id: str) -> Identification:
    return Identification(
        tuple(match(m) for m in response.matches), round(response.threshold, 6), face_id
    )


def verify_request(
    collection_id: str,
    subject: str,
    content: bytes,
    threshold: float | None,
    options: FaceOptions,
) -> face_pb.VerifyFaceRequest:
    check_media(options, "image")
    msg = face_pb.VerifyFaceRequest(
        collection_id=collection_id,
        subject=subject,
        image=image(content),
        options=face_options(options),
    )
    if threshold is not None:
        msg.threshold = threshold
    return msg


def verification(response, subject: str) -> Verification:
    return Verification(
        subject,
        response.match,
        round(response.distance, 6),
        response.face_id,
        round(response.threshold, 6),
        face(response.face),
        response.image_width,
        response.image_height,
    )
