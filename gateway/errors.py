"""The two error tables of the gateway: gRPC status -> task error and HTTP code,
and the JSON shape of every HTTP error."""

from __future__ import annotations

import grpc
from fastapi.responses import JSONResponse

# gRPC status -> (HTTP status in simple mode, whether the caller's input was at fault)
GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.OUT_OF_RANGE: 422,
    grpc.StatusCode.FAILED_PRECONDITION: 422,
    grpc.StatusCode.NOT_FOUND: 404,
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
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}

# Worth another attempt on another replica.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def task_error(code: grpc.StatusCode, details: str | None) -> dict[str, str]:
    """The `error` of a failed task, from the backend's status."""
    if code in _CALLER_FACING:
        message = details or code.name.lower()
    elif code == grpc.StatusCode.UNAVAILABLE:
        message = "no backend replica was available"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = "the backend did not finish in time"
    else:
        message = "the backend failed unexpectedly"
    return {"code": code.name.lower(), "message": message}


def http_status_for_task_error(error: dict[str, str]) -> int:
    try:
        code = grpc.StatusCode[error["code"].upper()]
    except KeyError:
        return 500
    return GRPC_TO_HTTP.get(code, 500)


def error_response(status: int, code: str, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)
