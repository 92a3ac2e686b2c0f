"""One exception type per kind of API error, from HTTP statuses and gRPC status codes.

    PerceptError
    ├── InvalidInput         400, 415, 422 / INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION
    │   └── IdempotencyMismatch   422: the Idempotency-Key was used for a different request
    ├── Unauthorized         401 / UNAUTHENTICATED          (no API key, or a bad one)
    ├── Forbidden            403 / PERMISSION_DENIED
    ├── NotFound             404 / NOT_FOUND
    │   └── Gone             410: the task existed but its record expired
    ├── Conflict             409 / ALREADY_EXISTS, ABORTED  (e.g. cancelling an ended task)
    ├── TooLarge             413 / RESOURCE_EXHAUSTED       (upload or message over the limit)
    ├── RateLimited          429                            (`retry_after` seconds)
    ├── Unavailable          503, 502, network errors / UNAVAILABLE   (`retry_after`)
    ├── DeadlineExceeded     504, a call past its deadline / DEADLINE_EXCEEDED
    ├── Cancelled            499 / CANCELLED
    ├── ServerError          500 and anything else / INTERNAL, UNKNOWN, ...
    └── TaskFailed           a task ended `failed` (`task`, `task.error`)
        └── TaskCancelled    a task ended `cancelled`

Every error has `message`, `code` (the API's error code, e.g. "invalid_image",
or the gRPC status name in lower case), `status` (HTTP status, when over
REST), `fields` (the request fields at fault, when the API names them) and
`request_id` (gRPC's x-request-id, when the server sent one).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc

    from percept.types import Task


class PerceptError(Exception):
    """Base of every error the SDK raises about the API."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        fields: Sequence[str] = (),
        task_id: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.fields = tuple(fields)
        self.task_id = task_id
        self.request_id = request_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f" [{self.code}]" if self.code else ""
        return f"{self.message}{where}"


class InvalidInput(PerceptError):
    """The request was refused as given: a bad file, option or field."""


class IdempotencyMismatch(InvalidInput):
    """The Idempotency-Key was already used for a different request."""


class Unauthorized(PerceptError):
    """No API key, or one the server does not accept."""


class Forbidden(PerceptError):
    """The key (or the server's policy) does not allow this."""


class NotFound(PerceptError):
    """No such task (or other resource)."""


class Gone(NotFound):
    """The task existed, but its record expired."""


class Conflict(PerceptError):
    """The resource is not in a state that allows this (e.g. the task already ended),
    or a request with the same Idempotency-Key is still being created."""


class TooLarge(PerceptError):
    """The upload (or gRPC message) is over the server's limit."""


class RateLimited(PerceptError):
    """Too many requests; `retry_after` says how long to wait, when the server said."""


class Unavailable(PerceptError):
    """The server cannot be reached or has no replica to serve (after retries)."""


class DeadlineExceeded(PerceptError):
    """The call did not finish within its deadline."""


class Cancelled(PerceptError):
    """The call was cancelled."""


class ServerError(PerceptError):
    """The server failed unexpectedly."""


class TaskFailed(PerceptError):
    """A task ended without a result: `task.error` says why."""

    def __init__(self, task: Task) -> None:
        error = task.error
        message = (
            f"task {task.task_id} {task.status.value}: {error.message}"
            if error
            else f"task {task.task_id} {task.status.value}"
        )
        super().__init__(message, code=error.code if error else None, task_id=task.task_id)
        self.task = task


class TaskCancelled(TaskFailed):
    """A task was cancelled before it finished."""


# --- HTTP ------------------------------------------------------------------------------------

_BY_STATUS: dict[int, type[PerceptError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: TooLarge,
    415: InvalidInput,
    422: InvalidInput,
    429: RateLimited,
    499: Cancelled,
    502: Unavailable,
    503: Unavailable,
    504: DeadlineExceeded,
}


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def from_http(status: int, body: Any, headers: Mapping[str, str] | None = None) -> PerceptError:
    """The exception for an HTTP error response: `body` is its parsed JSON (or text)."""
    headers = headers or {}
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        message = str(error.get("message") or f"HTTP {status}")
        code = error.get("code")
        fields = error.get("fields") or ()
        task_id = error.get("task_id")
    else:
        text = body if isinstance(body, str) else ""
        message = f"HTTP {status}" + (f": {text.strip()[:200]}" if text.strip() else "")
        code, fields, task_id = None, (), None
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else PerceptError)
    if status == 422 and code and "idempotency" in str(code):
        cls = IdempotencyMismatch
    return cls(
        message,
        code=str(code) if code else None,
        status=status,
        fields=[str(f) for f in fields] if isinstance(fields, list | tuple) else (),
        task_id=str(task_id) if task_id else None,
        retry_after=parse_retry_after(headers.get("retry-after")),
    )


# --- gRPC ------------------------------------------------------------------------------------

_BY_GRPC: dict[str, type[PerceptError]] = {
    "INVALID_ARGUMENT": InvalidInput,
    "OUT_OF_RANGE": InvalidInput,
    "FAILED_PRECONDITION": InvalidInput,
    "UNAUTHENTICATED": Unauthorized,
    "PERMISSION_DENIED": Forbidden,
    "NOT_FOUND": NotFound,
    "ALREADY_EXISTS": Conflict,
    "ABORTED": Conflict,
    "RESOURCE_EXHAUSTED": TooLarge,
    "UNAVAILABLE": Unavailable,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "CANCELLED": Cancelled,
}


def from_grpc(error: grpc.RpcError) -> PerceptError:
    """The exception for a failed gRPC call (sync or asyncio)."""
    code = error.code()  # type: ignore[attr-defined]
    name = code.name if code is not None else "UNKNOWN"
    details = error.details() or name.lower()  # type: ignore[attr-defined]
    metadata: dict[str, str] = {}
    try:
        for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
            metadata[key] = value if isinstance(value, str) else value.decode(errors="replace")
    except Exception:  # noqa: BLE001 - metadata is a nicety; never hide the real error
        pass
    cls = _BY_GRPC.get(name, ServerError)
    retry_after = parse_retry_after(metadata.get("retry-after"))
    if name == "RESOURCE_EXHAUSTED" and retry_after is not None:
        cls = RateLimited  # a quota, not a size: the server says when to come back
    return cls(
        details,
        code=name.lower(),
        request_id=metadata.get("x-request-id"),
        retry_after=retry_after,
    )
