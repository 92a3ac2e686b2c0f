from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class VideoSource(_message.Message):
    __slots__ = ("content", "uri")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    uri: str
    def __init__(self, content: _Optional[bytes] = ..., uri: _Optional[str] = ...) -> None: ...

class VideoSummary(_message.Message):
    __slots__ = ("expected_frames", "processed_frames", "last_frame_index", "partial", "reason")
    EXPECTED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    LAST_FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    expected_frames: int
    processed_frames: int
    last_frame_index: int
    partial: bool
    reason: str
    def __init__(self, expected_frames: _Optional[int] = ..., processed_frames: _Optional[int] = ..., last_frame_index: _Optional[int] = ..., partial: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...
