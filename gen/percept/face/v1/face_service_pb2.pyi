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
    __slots__ = ("box", "landmarks", "encoding")
    BOX_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    box: _image_pb2.BoundingBox
    landmarks: FaceLandmarks
    encoding: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, box: _Optional[_Union[_image_pb2.BoundingBox, _Mapping]] = ..., landmarks: _Optional[_Union[FaceLandmarks, _Mapping]] = ..., encoding: _Optional[_Iterable[float]] = ...) -> None: ...

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
    __slots__ = ("video", "frame_stride", "max_frames", "options")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    FRAME_STRIDE_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    video: _video_pb2.VideoSource
    frame_stride: int
    max_frames: int
    options: FaceOptions
    def __init__(self, video: _Optional[_Union[_video_pb2.VideoSource, _Mapping]] = ..., frame_stride: _Optional[int] = ..., max_frames: _Optional[int] = ..., options: _Optional[_Union[FaceOptions, _Mapping]] = ...) -> None: ...

class DetectFacesInVideoResponse(_message.Message):
    __slots__ = ("frame_index", "timestamp", "faces", "image_width", "image_height", "expected_frames")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    timestamp: float
    faces: _containers.RepeatedCompositeFieldContainer[Face]
    image_width: int
    image_height: int
    expected_frames: int
    def __init__(self, frame_index: _Optional[int] = ..., timestamp: _Optional[float] = ..., faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., expected_frames: _Optional[int] = ...) -> None: ...

class StreamFacesRequest(_message.Message):
    __slots__ = ("image", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: _image_pb2.Image
    options: FaceOptions
    def __init__(self, image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., options: _Optional[_Union[FaceOptions, _Mapping]] = ...) -> None: ...

class StreamFacesResponse(_message.Message):
    __slots__ = ("frame_index", "faces", "image_width", "image_height")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    faces: _containers.RepeatedCompositeFieldContainer[Face]
    image_width: int
    image_height: int
    def __init__(self, frame_index: _Optional[int] = ..., faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ...) -> None: ...
