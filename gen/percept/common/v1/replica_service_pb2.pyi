from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetReplicaInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetReplicaInfoResponse(_message.Message):
    __slots__ = ("replica", "services", "model", "backend", "device", "workers", "workers_ready", "calls_in_flight", "calls_served", "calls_failed", "mean_call_seconds", "started_at", "worker_restarts", "serving", "calls_refused")
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_READY_FIELD_NUMBER: _ClassVar[int]
    CALLS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    CALLS_SERVED_FIELD_NUMBER: _ClassVar[int]
    CALLS_FAILED_FIELD_NUMBER: _ClassVar[int]
    MEAN_CALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKER_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    CALLS_REFUSED_FIELD_NUMBER: _ClassVar[int]
    replica: str
    services: _containers.RepeatedScalarFieldContainer[str]
    model: str
    backend: str
    device: str
    workers: int
    workers_ready: int
    calls_in_flight: int
    calls_served: int
    calls_failed: int
    mean_call_seconds: float
    started_at: float
    worker_restarts: int
    serving: bool
    calls_refused: int
    def __init__(self, replica: _Optional[str] = ..., services: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., backend: _Optional[str] = ..., device: _Optional[str] = ..., workers: _Optional[int] = ..., workers_ready: _Optional[int] = ..., calls_in_flight: _Optional[int] = ..., calls_served: _Optional[int] = ..., calls_failed: _Optional[int] = ..., mean_call_seconds: _Optional[float] = ..., started_at: _Optional[float] = ..., worker_restarts: _Optional[int] = ..., serving: _Optional[bool] = ..., calls_refused: _Optional[int] = ...) -> None: ...
