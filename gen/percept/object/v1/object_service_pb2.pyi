from percept.common.v1 import field_rules_pb2 as _field_rules_pb2
from percept.common.v1 import image_pb2 as _image_pb2
from percept.common.v1 import video_pb2 as _video_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Backend(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKEND_UNSPECIFIED: _ClassVar[Backend]
    BACKEND_PYTORCH: _ClassVar[Backend]
    BACKEND_ONNXRUNTIME: _ClassVar[Backend]
BACKEND_UNSPECIFIED: Backend
BACKEND_PYTORCH: Backend
BACKEND_ONNXRUNTIME: Backend

class DetectionOptions(_message.Message):
    __slots__ = ("confidence_threshold", "iou_threshold", "class_names", "class_ids", "max_detections")
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    MAX_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    confidence_threshold: float
    iou_threshold: float
    class_names: _containers.RepeatedScalarFieldContainer[str]
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    max_detections: int
    def __init__(self, confidence_threshold: _Optional[float] = ..., iou_threshold: _Optional[float] = ..., class_names: _Optional[_Iterable[str]] = ..., class_ids: _Optional[_Iterable[int]] = ..., max_detections: _Optional[int] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("label", "class_id", "confidence", "box", "track_id")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    label: str
    class_id: int
    confidence: float
    box: _image_pb2.BoundingBox
    track_id: int
    def __init__(self, label: _Optional[str] = ..., class_id: _Optional[int] = ..., confidence: _Optional[float] = ..., box: _Optional[_Union[_image_pb2.BoundingBox, _Mapping]] = ..., track_id: _Optional[int] = ...) -> None: ...

class DetectObjectsRequest(_message.Message):
    __slots__ = ("image", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: _image_pb2.Image
    options: DetectionOptions
    def __init__(self, image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., options: _Optional[_Union[DetectionOptions, _Mapping]] = ...) -> None: ...

class DetectObjectsResponse(_message.Message):
    __slots__ = ("detections", "image_width", "image_height")
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    image_width: int
    image_height: int
    def __init__(self, detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ...) -> None: ...

class DetectObjectsInVideoRequest(_message.Message):
    __slots__ = ("video", "frame_stride", "max_frames", "options", "tracker")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    FRAME_STRIDE_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TRACKER_FIELD_NUMBER: _ClassVar[int]
    video: _video_pb2.VideoSource
    frame_stride: int
    max_frames: int
    options: DetectionOptions
    tracker: _video_pb2.TrackerOptions
    def __init__(self, video: _Optional[_Union[_video_pb2.VideoSource, _Mapping]] = ..., frame_stride: _Optional[int] = ..., max_frames: _Optional[int] = ..., options: _Optional[_Union[DetectionOptions, _Mapping]] = ..., tracker: _Optional[_Union[_video_pb2.TrackerOptions, _Mapping]] = ...) -> None: ...

class DetectObjectsInVideoResponse(_message.Message):
    __slots__ = ("frame_index", "timestamp", "detections", "image_width", "image_height", "expected_frames", "summary")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    timestamp: float
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    image_width: int
    image_height: int
    expected_frames: int
    summary: _video_pb2.VideoSummary
    def __init__(self, frame_index: _Optional[int] = ..., timestamp: _Optional[float] = ..., detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., expected_frames: _Optional[int] = ..., summary: _Optional[_Union[_video_pb2.VideoSummary, _Mapping]] = ...) -> None: ...

class StreamObjectsRequest(_message.Message):
    __slots__ = ("image", "options", "tracker", "summarize")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TRACKER_FIELD_NUMBER: _ClassVar[int]
    SUMMARIZE_FIELD_NUMBER: _ClassVar[int]
    image: _image_pb2.Image
    options: DetectionOptions
    tracker: _video_pb2.TrackerOptions
    summarize: bool
    def __init__(self, image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., options: _Optional[_Union[DetectionOptions, _Mapping]] = ..., tracker: _Optional[_Union[_video_pb2.TrackerOptions, _Mapping]] = ..., summarize: _Optional[bool] = ...) -> None: ...

class StreamObjectsResponse(_message.Message):
    __slots__ = ("frame_index", "detections", "image_width", "image_height", "summary")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    image_width: int
    image_height: int
    summary: _video_pb2.VideoSummary
    def __init__(self, frame_index: _Optional[int] = ..., detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., summary: _Optional[_Union[_video_pb2.VideoSummary, _Mapping]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("model_name", "backend", "device", "input_size", "class_names", "weights", "task")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    backend: Backend
    device: str
    input_size: int
    class_names: _containers.RepeatedScalarFieldContainer[str]
    weights: str
    task: str
    def __init__(self, model_name: _Optional[str] = ..., backend: _Optional[_Union[Backend, str]] = ..., device: _Optional[str] = ..., input_size: _Optional[int] = ..., class_names: _Optional[_Iterable[str]] = ..., weights: _Optional[str] = ..., task: _Optional[str] = ...) -> None: ...
