"""Percept's Python SDK: REST through the gateway, gRPC straight to the services.

    import percept
    with percept.Client("http://localhost:8000") as client:
        result = client.detect_faces("photo.jpg")

`percept.Client` / `percept.AsyncClient` speak REST to the gateway (tasks,
waiting, events, cancel, list, face collections); `percept.GrpcClient` /
`percept.AsyncGrpcClient` call the face and object services directly (unary,
video streams, live frames, face collections). All four return the types in `percept.types` and raise the
exceptions in `percept.errors`.
"""

# `percept` is also the namespace of the generated gRPC code (gen/percept/...,
# imported as percept.face.v1): extend this package over every `percept`
# directory on sys.path so both keep importing side by side.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

from typing import TYPE_CHECKING, Any  # noqa: E402

from percept.errors import (  # noqa: E402
    Conflict,
    DeadlineExceeded,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    PerceptError,
    RateLimited,
    ServerError,
    TaskCancelled,
    TaskFailed,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from percept.options import FaceOptions, ObjectOptions  # noqa: E402
from percept.retry import RetryPolicy  # noqa: E402
from percept.types import (  # noqa: E402
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
    FrameEvent,
    FrameResult,
    GenericItem,
    GenericResult,
    Health,
    Identification,
    ImageResult,
    Keypoint,
    Kind,
    KindInfo,
    Landmarks,
    Match,
    ModelInfo,
    Point,
    Progress,
    ProgressEvent,
    Source,
    SourceStatus,
    StatusEvent,
    Task,
    TaskError,
    TaskEvent,
    TaskPage,
    TaskStatus,
    Track,
    Verification,
    VideoResult,
    VideoSummary,
    VideoURI,
)

if TYPE_CHECKING:
    from percept.draw import draw
    from percept.transport.grpc import AsyncGrpcClient, GrpcClient
    from percept.transport.rest import AsyncClient, Client

__version__ = "0.1.0"

# Imported on first use: a REST user never loads grpc, a gRPC user never loads httpx.
_LAZY = {
    "Client": "percept.transport.rest",
    "AsyncClient": "percept.transport.rest",
    "GrpcClient": "percept.transport.grpc",
    "AsyncGrpcClient": "percept.transport.grpc",
    "draw": "percept.draw",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'percept' has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "AsyncGrpcClient",
    "Box",
    "Client",
    "Collection",
    "CollectionPage",
    "Comparison",
    "Conflict",
    "DeadlineExceeded",
    "Detection",
    "EnrolledFace",
    "Enrollment",
    "Face",
    "FaceMatch",
    "FaceOptions",
    "FacePage",
    "Forbidden",
    "FrameEvent",
    "FrameResult",
    "GenericItem",
    "GenericResult",
    "Gone",
    "GrpcClient",
    "Health",
    "Identification",
    "ImageResult",
    "InvalidInput",
    "Keypoint",
    "Kind",
    "KindInfo",
    "Landmarks",
    "Match",
    "ModelInfo",
    "NotFound",
    "ObjectOptions",
    "PerceptError",
    "Point",
    "Progress",
    "ProgressEvent",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "Source",
    "SourceStatus",
    "StatusEvent",
    "Task",
    "TaskCancelled",
    "TaskError",
    "TaskEvent",
    "TaskFailed",
    "TaskPage",
    "TaskStatus",
    "TooLarge",
    "Track",
    "Unauthorized",
    "Unavailable",
    "Verification",
    "VideoResult",
    "VideoSummary",
    "VideoURI",
    "draw",
]
