from percept.common.v1 import field_rules_pb2 as _field_rules_pb2
from percept.common.v1 import image_pb2 as _image_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrackerType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRACKER_TYPE_UNSPECIFIED: _ClassVar[TrackerType]
    TRACKER_TYPE_BYTETRACK: _ClassVar[TrackerType]
    TRACKER_TYPE_BOTSORT: _ClassVar[TrackerType]
    TRACKER_TYPE_OFF: _ClassVar[TrackerType]
TRACKER_TYPE_UNSPECIFIED: TrackerType
TRACKER_TYPE_BYTETRACK: TrackerType
TRACKER_TYPE_BOTSORT: TrackerType
TRACKER_TYPE_OFF: TrackerType

class VideoSource(_message.Message):
    __slots__ = ("content", "uri")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    uri: str
    def __init__(self, content: _Optional[bytes] = ..., uri: _Optional[str] = ...) -> None: ...

class VideoSummary(_message.Message):
    __slots__ = ("expected_frames", "processed_frames", "last_frame_index", "partial", "reason", "tracks", "gallery_searches")
    EXPECTED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    LAST_FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    GALLERY_SEARCHES_FIELD_NUMBER: _ClassVar[int]
    expected_frames: int
    processed_frames: int
    last_frame_index: int
    partial: bool
    reason: str
    tracks: _containers.RepeatedCompositeFieldContainer[TrackSummary]
    gallery_searches: int
    def __init__(self, expected_frames: _Optional[int] = ..., processed_frames: _Optional[int] = ..., last_frame_index: _Optional[int] = ..., partial: _Optional[bool] = ..., reason: _Optional[str] = ..., tracks: _Optional[_Iterable[_Union[TrackSummary, _Mapping]]] = ..., gallery_searches: _Optional[int] = ...) -> None: ...

class TrackerOptions(_message.Message):
    __slots__ = ("tracker", "lost_track_frames", "high_threshold", "low_threshold", "new_track_threshold", "match_threshold")
    TRACKER_FIELD_NUMBER: _ClassVar[int]
    LOST_TRACK_FRAMES_FIELD_NUMBER: _ClassVar[int]
    HIGH_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    LOW_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    NEW_TRACK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MATCH_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    tracker: TrackerType
    lost_track_frames: int
    high_threshold: float
    low_threshold: float
    new_track_threshold: float
    match_threshold: float
    def __init__(self, tracker: _Optional[_Union[TrackerType, str]] = ..., lost_track_frames: _Optional[int] = ..., high_threshold: _Optional[float] = ..., low_threshold: _Optional[float] = ..., new_track_threshold: _Optional[float] = ..., match_threshold: _Optional[float] = ...) -> None: ...

class TrackSummary(_message.Message):
    __slots__ = ("track_id", "first_frame_index", "first_timestamp", "last_frame_index", "last_timestamp", "frames_seen", "best_frame_index", "best_box", "best_score", "label", "class_id", "subject", "face_id", "distance")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LAST_FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FRAMES_SEEN_FIELD_NUMBER: _ClassVar[int]
    BEST_FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    BEST_BOX_FIELD_NUMBER: _ClassVar[int]
    BEST_SCORE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    track_id: int
    first_frame_index: int
    first_timestamp: float
    last_frame_index: int
    last_timestamp: float
    frames_seen: int
    best_frame_index: int
    best_box: _image_pb2.BoundingBox
    best_score: float
    label: str
    class_id: int
    subject: str
    face_id: str
    distance: float
    def __init__(self, track_id: _Optional[int] = ..., first_frame_index: _Optional[int] = ..., first_timestamp: _Optional[float] = ..., last_frame_index: _Optional[int] = ..., last_timestamp: _Optional[float] = ..., frames_seen: _Optional[int] = ..., best_frame_index: _Optional[int] = ..., best_box: _Optional[_Union[_image_pb2.BoundingBox, _Mapping]] = ..., best_score: _Optional[float] = ..., label: _Optional[str] = ..., class_id: _Optional[int] = ..., subject: _Optional[str] = ..., face_id: _Optional[str] = ..., distance: _Optional[float] = ...) -> None: ...
