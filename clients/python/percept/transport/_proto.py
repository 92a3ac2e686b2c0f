"""Protobuf <-> percept.types, for the gRPC clients (sync and asyncio alike)."""

from __future__ import annotations

from collections.abc import Sequence

from percept.common.v1 import image_pb2, video_pb2
from percept.face.v1 import face_service_pb2 as face_pb
from percept.object.v1 import object_service_pb2 as object_pb
from percept.options import FaceOptions, ObjectOptions, check_media
from percept.types import (
    LANDMARK_PARTS,
    Box,
    Comparison,
    Detection,
    Face,
    FaceMatch,
    FrameResult,
    ImageResult,
    Kind,
    Landmarks,
    ModelInfo,
    Point,
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
        if isinstance(item, int) or str(item).isdigit():
            msg.class_ids.append(int(item))
        else:
            msg.class_names.append(str(item))
    if o.max_detections is not None:
        msg.max_detections = o.max_detections
    return msg


def detect_request(kind: Kind, content: bytes, options: FaceOptions | ObjectOptions):
    check_media(options, "image")
    if kind is Kind.FACE:
        return face_pb.DetectFacesRequest(image=image(content), options=face_options(options))  # type: ignore[arg-type]
    return object_pb.DetectObjectsRequest(image=image(content), options=object_options(options))  # type: ignore[arg-type]


def video_request(kind: Kind, source: bytes | VideoURI, options: FaceOptions | ObjectOptions):
    common = {
        "video": video(source),
        "frame_stride": options.frame_stride or 0,
        "max_frames": options.max_frames or 0,
    }
    if kind is Kind.FACE:
        return face_pb.DetectFacesInVideoRequest(**common, options=face_options(options))  # type: ignore[arg-type]
    return object_pb.DetectObjectsInVideoRequest(**common, options=object_options(options))  # type: ignore[arg-type]


def stream_request(kind: Kind, content: bytes, options: FaceOptions | ObjectOptions | None):
    """One live frame; `options` only on the first (the service keeps them)."""
    if kind is Kind.FACE:
        msg = face_pb.StreamFacesRequest(image=image(content))
        if options is not None:
            msg.options.CopyFrom(face_options(options))  # type: ignore[arg-type]
        return msg
    msg = object_pb.StreamObjectsRequest(image=image(content))
    if options is not None:
        msg.options.CopyFrom(object_options(options))  # type: ignore[arg-type]
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


def face(f) -> Face:
    landmarks = None
    if f.HasField("landmarks"):
        landmarks = Landmarks(
            **{
                name: tuple(Point(p.x, p.y) for p in getattr(f.landmarks, name))
                for name in LANDMARK_PARTS
            }
        )
    return Face(box(f.box), landmarks, tuple(f.encoding) if len(f.encoding) else None)


def detection(d) -> Detection:
    return Detection(d.label, d.class_id, d.confidence, box(d.box))


def _items(response) -> dict:
    if hasattr(response, "faces"):
        return {"faces": tuple(face(f) for f in response.faces)}
    return {"detections": tuple(detection(d) for d in response.detections)}


def image_result(response, kind: Kind) -> ImageResult:
    return ImageResult(kind, response.image_width, response.image_height, **_items(response))


def frame_result(response, kind: Kind) -> FrameResult:
    """A video frame (with timestamp and expected_frames) or a live frame (without)."""
    return FrameResult(
        kind,
        response.frame_index,
        response.timestamp if hasattr(response, "timestamp") else None,
        response.image_width,
        response.image_height,
        expected_frames=getattr(response, "expected_frames", 0) or None,
        **_items(response),
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
