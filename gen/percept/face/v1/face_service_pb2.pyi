import datetime

from percept.common.v1 import field_rules_pb2 as _field_rules_pb2
from percept.common.v1 import image_pb2 as _image_pb2
from percept.common.v1 import video_pb2 as _video_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Detector(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DETECTOR_UNSPECIFIED: _ClassVar[Detector]
    DETECTOR_HOG: _ClassVar[Detector]
    DETECTOR_CNN: _ClassVar[Detector]
DETECTOR_UNSPECIFIED: Detector
DETECTOR_HOG: Detector
DETECTOR_CNN: Detector

class FaceOptions(_message.Message):
    __slots__ = ("detector", "upsample", "return_landmarks", "return_encodings", "detection_max_side", "num_jitters")
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    UPSAMPLE_FIELD_NUMBER: _ClassVar[int]
    RETURN_LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    RETURN_ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    DETECTION_MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    NUM_JITTERS_FIELD_NUMBER: _ClassVar[int]
    detector: Detector
    upsample: int
    return_landmarks: bool
    return_encodings: bool
    detection_max_side: int
    num_jitters: int
    def __init__(self, detector: _Optional[_Union[Detector, str]] = ..., upsample: _Optional[int] = ..., return_landmarks: _Optional[bool] = ..., return_encodings: _Optional[bool] = ..., detection_max_side: _Optional[int] = ..., num_jitters: _Optional[int] = ...) -> None: ...

class FaceLandmarks(_message.Message):
    __slots__ = ("chin", "left_eyebrow", "right_eyebrow", "nose_bridge", "nose_tip", "left_eye", "right_eye", "top_lip", "bottom_lip")
    CHIN_FIELD_NUMBER: _ClassVar[int]
    LEFT_EYEBROW_FIELD_NUMBER: _ClassVar[int]
    RIGHT_EYEBROW_FIELD_NUMBER: _ClassVar[int]
    NOSE_BRIDGE_FIELD_NUMBER: _ClassVar[int]
    NOSE_TIP_FIELD_NUMBER: _ClassVar[int]
    LEFT_EYE_FIELD_NUMBER: _ClassVar[int]
    RIGHT_EYE_FIELD_NUMBER: _ClassVar[int]
    TOP_LIP_FIELD_NUMBER: _ClassVar[int]
    BOTTOM_LIP_FIELD_NUMBER: _ClassVar[int]
    chin: _containers.RepeatedCompositeFieldContainer[_image_pb2.Point]
    left_eyebrow: _containers.RepeatedCompositeFieldContainer[_image_pb2.Point]
    right_eyebrow: _containers.RepeatedCompositeFieldContainer[_image_pb2.Point]
    nose_bridge: _containers.RepeatedCompositeFieldContainer[_image_pb2.Point]
    nose_tip: _containers.RepeatedCompositeFieldContainer[_image_pb2.Point]
    left_eye: _containers.RepeatedCompositeFieldContainer[_image_pb2.Point]
    right_eye: _containers.RepeatedCompositeFieldContainer[_image_pb2.Point]
    top_lip: _containers.RepeatedCompositeFieldContainer[_image_pb2.Point]
    bottom_lip: _containers.RepeatedCompositeFieldContainer[_image_pb2.Point]
    def __init__(self, chin: _Optional[_Iterable[_Union[_image_pb2.Point, _Mapping]]] = ..., left_eyebrow: _Optional[_Iterable[_Union[_image_pb2.Point, _Mapping]]] = ..., right_eyebrow: _Optional[_Iterable[_Union[_image_pb2.Point, _Mapping]]] = ..., nose_bridge: _Optional[_Iterable[_Union[_image_pb2.Point, _Mapping]]] = ..., nose_tip: _Optional[_Iterable[_Union[_image_pb2.Point, _Mapping]]] = ..., left_eye: _Optional[_Iterable[_Union[_image_pb2.Point, _Mapping]]] = ..., right_eye: _Optional[_Iterable[_Union[_image_pb2.Point, _Mapping]]] = ..., top_lip: _Optional[_Iterable[_Union[_image_pb2.Point, _Mapping]]] = ..., bottom_lip: _Optional[_Iterable[_Union[_image_pb2.Point, _Mapping]]] = ...) -> None: ...

class FaceEncoding(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Face(_message.Message):
    __slots__ = ("box", "landmarks", "encoding", "matches", "track_id")
    BOX_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    box: _image_pb2.BoundingBox
    landmarks: FaceLandmarks
    encoding: _containers.RepeatedScalarFieldContainer[float]
    matches: _containers.RepeatedCompositeFieldContainer[IdentityMatch]
    track_id: int
    def __init__(self, box: _Optional[_Union[_image_pb2.BoundingBox, _Mapping]] = ..., landmarks: _Optional[_Union[FaceLandmarks, _Mapping]] = ..., encoding: _Optional[_Iterable[float]] = ..., matches: _Optional[_Iterable[_Union[IdentityMatch, _Mapping]]] = ..., track_id: _Optional[int] = ...) -> None: ...

class IdentityMatch(_message.Message):
    __slots__ = ("face_id", "subject", "distance")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    subject: str
    distance: float
    def __init__(self, face_id: _Optional[str] = ..., subject: _Optional[str] = ..., distance: _Optional[float] = ...) -> None: ...

class DetectFacesRequest(_message.Message):
    __slots__ = ("image", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: _image_pb2.Image
    options: FaceOptions
    def __init__(self, image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., options: _Optional[_Union[FaceOptions, _Mapping]] = ...) -> None: ...

class DetectFacesResponse(_message.Message):
    __slots__ = ("faces", "image_width", "image_height")
    FACES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[Face]
    image_width: int
    image_height: int
    def __init__(self, faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ...) -> None: ...

class FaceEncodingList(_message.Message):
    __slots__ = ("encodings",)
    ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    encodings: _containers.RepeatedCompositeFieldContainer[FaceEncoding]
    def __init__(self, encodings: _Optional[_Iterable[_Union[FaceEncoding, _Mapping]]] = ...) -> None: ...

class CompareFacesRequest(_message.Message):
    __slots__ = ("probe", "reference_image", "reference_encodings", "tolerance", "options")
    PROBE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    probe: _image_pb2.Image
    reference_image: _image_pb2.Image
    reference_encodings: FaceEncodingList
    tolerance: float
    options: FaceOptions
    def __init__(self, probe: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., reference_image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., reference_encodings: _Optional[_Union[FaceEncodingList, _Mapping]] = ..., tolerance: _Optional[float] = ..., options: _Optional[_Union[FaceOptions, _Mapping]] = ...) -> None: ...

class FaceMatch(_message.Message):
    __slots__ = ("probe_index", "reference_index", "distance", "match")
    PROBE_INDEX_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    probe_index: int
    reference_index: int
    distance: float
    match: bool
    def __init__(self, probe_index: _Optional[int] = ..., reference_index: _Optional[int] = ..., distance: _Optional[float] = ..., match: _Optional[bool] = ...) -> None: ...

class CompareFacesResponse(_message.Message):
    __slots__ = ("probe_faces", "reference_faces", "matches", "tolerance")
    PROBE_FACES_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FACES_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    probe_faces: _containers.RepeatedCompositeFieldContainer[Face]
    reference_faces: _containers.RepeatedCompositeFieldContainer[Face]
    matches: _containers.RepeatedCompositeFieldContainer[FaceMatch]
    tolerance: float
    def __init__(self, probe_faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., reference_faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., matches: _Optional[_Iterable[_Union[FaceMatch, _Mapping]]] = ..., tolerance: _Optional[float] = ...) -> None: ...

class DetectFacesInVideoRequest(_message.Message):
    __slots__ = ("video", "frame_stride", "max_frames", "options", "collection_id", "top_k", "threshold", "tracker")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    FRAME_STRIDE_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TRACKER_FIELD_NUMBER: _ClassVar[int]
    video: _video_pb2.VideoSource
    frame_stride: int
    max_frames: int
    options: FaceOptions
    collection_id: str
    top_k: int
    threshold: float
    tracker: _video_pb2.TrackerOptions
    def __init__(self, video: _Optional[_Union[_video_pb2.VideoSource, _Mapping]] = ..., frame_stride: _Optional[int] = ..., max_frames: _Optional[int] = ..., options: _Optional[_Union[FaceOptions, _Mapping]] = ..., collection_id: _Optional[str] = ..., top_k: _Optional[int] = ..., threshold: _Optional[float] = ..., tracker: _Optional[_Union[_video_pb2.TrackerOptions, _Mapping]] = ...) -> None: ...

class DetectFacesInVideoResponse(_message.Message):
    __slots__ = ("frame_index", "timestamp", "faces", "image_width", "image_height", "expected_frames", "summary")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    timestamp: float
    faces: _containers.RepeatedCompositeFieldContainer[Face]
    image_width: int
    image_height: int
    expected_frames: int
    summary: _video_pb2.VideoSummary
    def __init__(self, frame_index: _Optional[int] = ..., timestamp: _Optional[float] = ..., faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., expected_frames: _Optional[int] = ..., summary: _Optional[_Union[_video_pb2.VideoSummary, _Mapping]] = ...) -> None: ...

class StreamFacesRequest(_message.Message):
    __slots__ = ("image", "options", "collection_id", "top_k", "threshold", "tracker", "summarize")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TRACKER_FIELD_NUMBER: _ClassVar[int]
    SUMMARIZE_FIELD_NUMBER: _ClassVar[int]
    image: _image_pb2.Image
    options: FaceOptions
    collection_id: str
    top_k: int
    threshold: float
    tracker: _video_pb2.TrackerOptions
    summarize: bool
    def __init__(self, image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., options: _Optional[_Union[FaceOptions, _Mapping]] = ..., collection_id: _Optional[str] = ..., top_k: _Optional[int] = ..., threshold: _Optional[float] = ..., tracker: _Optional[_Union[_video_pb2.TrackerOptions, _Mapping]] = ..., summarize: _Optional[bool] = ...) -> None: ...

class StreamFacesResponse(_message.Message):
    __slots__ = ("frame_index", "faces", "image_width", "image_height", "summary")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    faces: _containers.RepeatedCompositeFieldContainer[Face]
    image_width: int
    image_height: int
    summary: _video_pb2.VideoSummary
    def __init__(self, frame_index: _Optional[int] = ..., faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., summary: _Optional[_Union[_video_pb2.VideoSummary, _Mapping]] = ...) -> None: ...

class Collection(_message.Message):
    __slots__ = ("collection_id", "description", "created_at", "face_count", "subject_count")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    description: str
    created_at: _timestamp_pb2.Timestamp
    face_count: int
    subject_count: int
    def __init__(self, collection_id: _Optional[str] = ..., description: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., face_count: _Optional[int] = ..., subject_count: _Optional[int] = ...) -> None: ...

class EnrolledFace(_message.Message):
    __slots__ = ("face_id", "subject", "external_id", "box", "created_at")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    subject: str
    external_id: str
    box: _image_pb2.BoundingBox
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, face_id: _Optional[str] = ..., subject: _Optional[str] = ..., external_id: _Optional[str] = ..., box: _Optional[_Union[_image_pb2.BoundingBox, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("collection_id", "description")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    description: str
    def __init__(self, collection_id: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class CreateCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: Collection
    def __init__(self, collection: _Optional[_Union[Collection, _Mapping]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections", "next_page_token")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[Collection]
    next_page_token: str
    def __init__(self, collections: _Optional[_Iterable[_Union[Collection, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DescribeCollectionRequest(_message.Message):
    __slots__ = ("collection_id",)
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    def __init__(self, collection_id: _Optional[str] = ...) -> None: ...

class DescribeCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: Collection
    def __init__(self, collection: _Optional[_Union[Collection, _Mapping]] = ...) -> None: ...

class DeleteCollectionRequest(_message.Message):
    __slots__ = ("collection_id",)
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    def __init__(self, collection_id: _Optional[str] = ...) -> None: ...

class DeleteCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EnrollFacesRequest(_message.Message):
    __slots__ = ("collection_id", "image", "subject", "external_id", "max_faces", "options")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_FACES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    image: _image_pb2.Image
    subject: str
    external_id: str
    max_faces: int
    options: FaceOptions
    def __init__(self, collection_id: _Optional[str] = ..., image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., subject: _Optional[str] = ..., external_id: _Optional[str] = ..., max_faces: _Optional[int] = ..., options: _Optional[_Union[FaceOptions, _Mapping]] = ...) -> None: ...

class EnrollFacesResponse(_message.Message):
    __slots__ = ("faces", "faces_found", "image_width", "image_height")
    FACES_FIELD_NUMBER: _ClassVar[int]
    FACES_FOUND_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[EnrolledFace]
    faces_found: int
    image_width: int
    image_height: int
    def __init__(self, faces: _Optional[_Iterable[_Union[EnrolledFace, _Mapping]]] = ..., faces_found: _Optional[int] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ...) -> None: ...

class ListFacesRequest(_message.Message):
    __slots__ = ("collection_id", "subject", "page_size", "page_token")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    subject: str
    page_size: int
    page_token: str
    def __init__(self, collection_id: _Optional[str] = ..., subject: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFacesResponse(_message.Message):
    __slots__ = ("faces", "next_page_token")
    FACES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[EnrolledFace]
    next_page_token: str
    def __init__(self, faces: _Optional[_Iterable[_Union[EnrolledFace, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteFacesRequest(_message.Message):
    __slots__ = ("collection_id", "face_ids")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    face_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection_id: _Optional[str] = ..., face_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteFacesResponse(_message.Message):
    __slots__ = ("deleted_face_ids",)
    DELETED_FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    deleted_face_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted_face_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteSubjectRequest(_message.Message):
    __slots__ = ("collection_id", "subject")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    subject: str
    def __init__(self, collection_id: _Optional[str] = ..., subject: _Optional[str] = ...) -> None: ...

class DeleteSubjectResponse(_message.Message):
    __slots__ = ("deleted_faces",)
    DELETED_FACES_FIELD_NUMBER: _ClassVar[int]
    deleted_faces: int
    def __init__(self, deleted_faces: _Optional[int] = ...) -> None: ...

class IdentifyFacesRequest(_message.Message):
    __slots__ = ("collection_id", "image", "top_k", "threshold", "options")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    image: _image_pb2.Image
    top_k: int
    threshold: float
    options: FaceOptions
    def __init__(self, collection_id: _Optional[str] = ..., image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., top_k: _Optional[int] = ..., threshold: _Optional[float] = ..., options: _Optional[_Union[FaceOptions, _Mapping]] = ...) -> None: ...

class IdentifyFacesResponse(_message.Message):
    __slots__ = ("faces", "image_width", "image_height", "threshold")
    FACES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[Face]
    image_width: int
    image_height: int
    threshold: float
    def __init__(self, faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., threshold: _Optional[float] = ...) -> None: ...

class SearchFacesRequest(_message.Message):
    __slots__ = ("collection_id", "face_id", "top_k", "threshold")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    face_id: str
    top_k: int
    threshold: float
    def __init__(self, collection_id: _Optional[str] = ..., face_id: _Optional[str] = ..., top_k: _Optional[int] = ..., threshold: _Optional[float] = ...) -> None: ...

class SearchFacesResponse(_message.Message):
    __slots__ = ("matches", "threshold")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[IdentityMatch]
    threshold: float
    def __init__(self, matches: _Optional[_Iterable[_Union[IdentityMatch, _Mapping]]] = ..., threshold: _Optional[float] = ...) -> None: ...

class VerifyFaceRequest(_message.Message):
    __slots__ = ("collection_id", "subject", "image", "threshold", "options")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    subject: str
    image: _image_pb2.Image
    threshold: float
    options: FaceOptions
    def __init__(self, collection_id: _Optional[str] = ..., subject: _Optional[str] = ..., image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., threshold: _Optional[float] = ..., options: _Optional[_Union[FaceOptions, _Mapping]] = ...) -> None: ...

class VerifyFaceResponse(_message.Message):
    __slots__ = ("match", "distance", "face_id", "face", "threshold", "image_width", "image_height")
    MATCH_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    match: bool
    distance: float
    face_id: str
    face: Face
    threshold: float
    image_width: int
    image_height: int
    def __init__(self, match: _Optional[bool] = ..., distance: _Optional[float] = ..., face_id: _Optional[str] = ..., face: _Optional[_Union[Face, _Mapping]] = ..., threshold: _Optional[float] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ...) -> None: ...
