"""The REST API's bodies, for /openapi.json. Routes answer with prebuilt JSON
(no per-request validation on the hot path); these models document it, and
tests check real answers against them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Box(BaseModel):
    """A rectangle in source-image pixels (origin top-left)."""

    left: float
    top: float
    right: float
    bottom: float


class Face(BaseModel):
    box: Box
    landmarks: dict[str, list[tuple[float, float]]] | None = Field(
        None, description="68 points in 9 named parts, [x, y] pixels; when asked."
    )
    encoding: list[float] | None = Field(None, description="128 floats; when asked.")


class FaceImageResult(BaseModel):
    faces: list[Face]
    image_width: int
    image_height: int


class Detection(BaseModel):
    label: str
    class_id: int
    confidence: float = Field(description="[0, 1]")
    box: Box


class ObjectImageResult(BaseModel):
    detections: list[Detection] = Field(description="Highest confidence first.")
    image_width: int
    image_height: int


class FrameFields(BaseModel):
    frame_index: int = Field(description="Index among all decoded frames, from 0.")
    timestamp: float = Field(description="Seconds from the start of the video.")


class FaceFrame(FaceImageResult, FrameFields):
    pass


class ObjectFrame(ObjectImageResult, FrameFields):
    pass


class FaceVideoResult(BaseModel):
    frames: list[FaceFrame]


class ObjectVideoResult(BaseModel):
    frames: list[ObjectFrame]


class Progress(BaseModel):
    done: int = Field(description="Frames (or items) done.")
    total: int | None = Field(description="Frames expected, when known.")


class TaskError(BaseModel):
    code: str = Field(description="invalid_argument, deadline_exceeded, attempts_exhausted, ...")
    message: str


Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Task(BaseModel):
    """A task: what was asked, where it stands, and its result or error."""

    task_id: str
    kind: str = Field(description="What the task does, e.g. face_detection.")
    media: Literal["image", "video"]
    status: Status
    progress: Progress
    attempts: int = Field(description="Runs started (a lost replica or dispatcher means another).")
    options: dict[str, Any] = Field(
        description="The options the caller set (unset ones are absent)."
    )
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    expires_at: str | None
    status_url: str | None = None
    replica: str | None = Field(None, description="The replica that ran it (host:port).")
    result: Any | None = Field(None, description="When succeeded: the kind's result.")
    error: TaskError | None = None


class Accepted(BaseModel):
    task_id: str
    status: Status
    status_url: str


class TaskPage(BaseModel):
    tasks: list[Task]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable: invalid_option, too_large, not_found, ...")
    message: str = Field(description="What was wrong and what is accepted.")
    fields: list[str] | None = Field(None, description="The request fields at fault.")
    task_id: str | None = Field(None, description="The task, when the error is a task's.")


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for error statuses, all with ErrorBody."""
    described = {
        400: "Malformed request",
        401: "Missing or invalid API key",
        403: "Not allowed",
        404: "Unknown task",
        409: "Conflict",
        410: "The task's record expired",
        413: "Upload over the size limit",
        415: "Wrong content type",
        422: "Invalid option, file, or input the model rejected",
        429: "Rate or quota limit reached (see Retry-After)",
        500: "Unexpected failure (details in the server log)",
        503: "Unavailable: a backend or the job store (see Retry-After)",
        504: "The backend did not finish in time",
    }
    return {s: {"model": ErrorBody, "description": described.get(s, "Error")} for s in statuses}


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    ready: bool
    checks: dict[str, bool] = Field(description="redis, and each backend: has a SERVING replica.")


class KindInfo(BaseModel):
    kind: str
    media: Literal["image", "video"]
    path: str = Field(description="The submit route.")
    summary: str
    backend: str
    rpc: str = Field(description="The gRPC method it runs.")
    options: dict[str, dict[str, Any]] = Field(description="JSON schema of each option.")


class KindList(BaseModel):
    kinds: list[KindInfo]


def task_url(request, task_id: str) -> str:
    """The task's absolute URL (under the app's root path), without a route lookup."""
    return f"{request.base_url}api/task/{task_id}"
