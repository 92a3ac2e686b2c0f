"""The one table that maps domain errors to gRPC status codes (used by the
server's interceptor). Anything that is not a PerceptError is INTERNAL: its
details go to the log only."""

from __future__ import annotations

import grpc

from percept_runtime import errors

STATUS_BY_ERROR: dict[type[errors.PerceptError], grpc.StatusCode] = {
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InputTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.AccessDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_for(error: BaseException) -> grpc.StatusCode:
    """The gRPC status code for an exception (INTERNAL when it is not ours)."""
    for cls in type(error).__mro__:
        code = STATUS_BY_ERROR.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL
