"""Domain errors and the one table that maps them to gRPC status codes.

Library code raises these; the server's interceptor turns them into a status
with the error's message. Anything else becomes INTERNAL with a generic
message, and the details go to the log only.
"""

from __future__ import annotations

import grpc


class PerceptError(Exception):
    """Base of every error whose message is safe and useful to show a caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self):  # keep subclasses picklable across worker processes
        return (type(self), (self.message,))


class InvalidInput(PerceptError):
    """The caller sent something we cannot use (bad bytes, bad option)."""


class InputTooLarge(PerceptError):
    """The input exceeds a configured size limit."""


class AccessDenied(PerceptError):
    """The caller asked for a resource the server is not allowed to open."""


class NotFound(PerceptError):
    """A named thing does not exist."""


class Unavailable(PerceptError):
    """The server cannot serve right now (draining, workers restarting)."""


STATUS_BY_ERROR: dict[type[PerceptError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    InputTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    AccessDenied: grpc.StatusCode.PERMISSION_DENIED,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_for(error: BaseException) -> grpc.StatusCode:
    """The gRPC status code for an exception (INTERNAL when it is not ours)."""
    for cls in type(error).__mro__:
        code = STATUS_BY_ERROR.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL
