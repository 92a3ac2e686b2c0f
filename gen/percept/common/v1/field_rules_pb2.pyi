from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor
RULES_FIELD_NUMBER: _ClassVar[int]
rules: _descriptor.FieldDescriptor

class FieldRules(_message.Message):
    __slots__ = ("min", "max", "min_exclusive", "default", "zero_means_unset", "max_items")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MIN_EXCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    ZERO_MEANS_UNSET_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    min: float
    max: float
    min_exclusive: bool
    default: float
    zero_means_unset: bool
    max_items: int
    def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ..., min_exclusive: _Optional[bool] = ..., default: _Optional[float] = ..., zero_means_unset: _Optional[bool] = ..., max_items: _Optional[int] = ...) -> None: ...
