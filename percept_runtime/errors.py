"""Domain errors: what model and library code raises when a caller is at fault
or the server cannot serve. Plain Python, no gRPC: `percept_runtime.status`
holds the one table that maps them to gRPC status codes at the server's edge.
"""

from __future__ import annotations


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


class AlreadyExists(PerceptError):
    """Something the caller asked to create exists already."""


class Unavailable(PerceptError):
    """The server cannot serve right now (draining, workers restarting)."""
