"""The gateway's error tables, used by every route:

- `HTTP_ERRORS`: exception -> (HTTP status, error code); routes raise, one
  handler answers `{"error": {"code", "message", ...}}`;
- `GRPC_TO_HTTP`: a backend's gRPC status -> HTTP status (simple mode) and the
  `error` a failed task records.

A caller's mistake says what was wrong and what is accepted; anything
unexpected is 500 with a generic message, the details in the log only.
"""

from __future__ import annotations

import logging

import grpc
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from percept_runtime import errors as domain

logger = logging.getLogger(__name__)

STORE_DOWN = (RedisConnectionError, RedisTimeoutError)


class ApiError(Exception):
    """An HTTP error with its code and message, raised by routes."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: list[str] | None = None,
        headers: dict[str, str] | None = None,
        **extra,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields, self.headers, self.extra = fields, headers, extra


class TaskGone(Exception):
    """The id existed but its record expired."""


class TaskNotFound(Exception):
    """No task ever had this id (or its tombstone expired too)."""


# Domain exceptions -> (HTTP status, error code). Subclasses match their base.
HTTP_ERRORS: dict[type[BaseException], tuple[int, str]] = {
    domain.InvalidInput: (422, "invalid_input"),
    domain.InputTooLarge: (413, "too_large"),
    domain.AccessDenied: (403, "forbidden"),
    domain.NotFound: (404, "not_found"),
    domain.AlreadyExists: (409, "already_exists"),
    domain.Unavailable: (503, "unavailable"),
    TaskNotFound: (404, "not_found"),
    TaskGone: (410, "expired"),
}

# gRPC status -> HTTP status (simple mode answers and the API's error codes).
GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.OUT_OF_RANGE: 422,
    grpc.StatusCode.FAILED_PRECONDITION: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.CANCELLED: 499,
}

# Codes whose message comes from our services and is meant for the caller.
_CALLER_FACING = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}

# Worth another attempt on another replica: the replica was lost, not the
# request at fault. A deadline is not retried: the same work would time out again.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE}

# Error codes a task can end with that are not gRPC statuses.
TASK_ERROR_HTTP = {
    "attempts_exhausted": 503,
    "input_lost": 500,
    "gateway_lost": 503,
    "backend_auth": 502,
}


def task_error(code: grpc.StatusCode, details: str | None) -> dict[str, str]:
    """The `error` of a failed task, from the backend's status."""
    if code == grpc.StatusCode.UNAUTHENTICATED:  # our credentials, not the caller's
        return {
            "code": "backend_auth",
            "message": "the replicas refused this gateway's credentials "
            "(check GATEWAY_GRPC_TOKEN and the TLS settings)",
        }
    if code in _CALLER_FACING:
        message = details or code.name.lower()
    elif code == grpc.StatusCode.UNAVAILABLE:
        message = "no backend replica was available"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = "the backend did not finish in time"
    else:
        message = "the backend failed unexpectedly"
    return {"code": code.name.lower(), "message": message}


def grpc_api_error(
    code: grpc.StatusCode, details: str | None, *, from_service: bool = False
) -> ApiError:
    """The ApiError for a backend's failed call answered synchronously (the
    collection routes): the status from GRPC_TO_HTTP, the message as a task's.
    `from_service`: a replica itself answered (not the channel), so an
    UNAVAILABLE's message is ours and says why (its store is unreachable)."""
    error = task_error(code, details)
    if from_service and code == grpc.StatusCode.UNAVAILABLE and details:
        error["message"] = details
    status = GRPC_TO_HTTP.get(code, 500)
    headers = {"Retry-After": "2"} if status == 503 else None
    return ApiError(status, error["code"], error["message"], headers=headers)


def http_status_for_task_error(error: dict[str, str]) -> int:
    code = error.get("code", "")
    if code in TASK_ERROR_HTTP:
        return TASK_ERROR_HTTP[code]
    try:
        return GRPC_TO_HTTP.get(grpc.StatusCode[code.upper()], 500)
    except KeyError:
        return 500


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra
) -> JSONResponse:
    body = {"code": code, "message": message}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def api_error_response(exc: ApiError) -> JSONResponse:
    return error_response(
        exc.status, exc.code, exc.message, exc.headers, fields=exc.fields, **exc.extra
    )


def mapped_error(exc: BaseException) -> ApiError | None:
    """The ApiError for a domain exception in HTTP_ERRORS, else None."""
    for cls in type(exc).__mro__:
        hit = HTTP_ERRORS.get(cls)
        if hit is not None:
            message = exc.message if isinstance(exc, domain.PerceptError) else _default_message(exc)
            return ApiError(hit[0], hit[1], message)
    return None


def _default_message(exc: BaseException) -> str:
    if isinstance(exc, TaskGone):
        return f"task {exc.args[0]} existed but its record expired"
    if isinstance(exc, TaskNotFound):
        return f"no task {exc.args[0]}"
    return str(exc)


def _store_failure(exc: BaseException, where: str) -> tuple[str, str, str] | None:
    """(code, message, Retry-After) when the job store failed, logged here; else None."""
    if isinstance(exc, RedisResponseError) and str(exc).startswith("OOM"):
        logger.error("job store full on %s: %s", where, exc)
        return (
            "store_full",
            "the job store (Redis) is full: nothing new is accepted until tasks end; retry later",
            "10",
        )
    if isinstance(exc, STORE_DOWN):
        logger.warning("job store unavailable on %s: %s", where, exc)
        return "store_unavailable", "the job store (Redis) is unavailable; retry shortly", "2"
    return None


def response_for(exc: BaseException, where: str = "") -> JSONResponse:
    """The answer to any exception a route raised: the one place that decides."""
    if isinstance(exc, ApiError):
        return api_error_response(exc)
    mapped = mapped_error(exc)
    if mapped is not None:
        return api_error_response(mapped)
    failure = _store_failure(exc, where)
    if failure is not None:
        code, message, retry_after = failure
        return error_response(503, code, message, headers={"Retry-After": retry_after})
    logger.error("unhandled error on %s", where, exc_info=exc)
    return error_response(500, "internal", "internal error; see the gateway log")
