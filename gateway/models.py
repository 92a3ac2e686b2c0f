"""The REST API's bodies, for /openapi.json. Routes answer with prebuilt JSON
(no per-request validation on the hot path); these models document it, and
tests check real answers against them."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from gateway.protoform import DECIMAL, DECIMAL_TEXT, INTEGER, INTEGER_TEXT
from percept_runtime import ids


def _ascii_number(pattern: re.Pattern[str], accepted: str):
    """A JSON number, or a string holding one in ASCII digits (pydantic alone
    would also take ' 2', '1_000' or '+2' as 2)."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and not pattern.fullmatch(value):
            raise PydanticCustomError(
                "ascii_number",
                "{value} is not valid: use {accepted}",
                {"value": repr(value[:64]), "accepted": accepted},
            )
        return value

    return BeforeValidator(check)


def ascii_int(**bounds: int) -> Any:
    """int, from JSON or a string of ASCII digits, within `bounds` (ge, gt, le,
    lt; written before the check, so the schema keeps them as minimum/maximum)."""
    return Annotated[int, Field(**bounds), _ascii_number(INTEGER, INTEGER_TEXT)]


def ascii_float(**bounds: float) -> Any:
    """float, from JSON or a string of ASCII digits, within `bounds`."""
    return Annotated[float, Field(**bounds), _ascii_number(DECIMAL, DECIMAL_TEXT)]


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
    track_id: int | None = Field(
        None,
        description="Videos: the face's track, stable across frames within the task; absent "
        "when untracked (tracker=off, a face's first frame).",
    )


class FaceImageResult(BaseModel):
    faces: list[Face]
    image_width: int
    image_height: int


class Detection(BaseModel):
    label: str
    class_id: int
    confidence: float = Field(description="[0, 1]")
    box: Box
    track_id: int | None = Field(
        None,
        description="Videos: the object's track, stable across frames within the task; absent "
        "when untracked (tracker=off, an object's first frame, a low score).",
    )


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


class Track(BaseModel):
    """One face or object over the video: where and when it was, its best sighting."""

    track_id: int
    first_frame_index: int
    first_timestamp: float = Field(description="Seconds from the start.")
    last_frame_index: int
    last_timestamp: float = Field(description="Seconds from the start.")
    frames_seen: int
    best_frame_index: int = Field(
        description="The frame of the highest-confidence box, or of the best face (largest, "
        "sharpest, most frontal)."
    )
    best_box: Box
    best_score: float = Field(description="Objects: that confidence; faces: a quality >= 0.")
    label: str | None = Field(None, description="Objects: the class seen most often.")
    class_id: int | None = None
    subject: str | None = Field(None, description="Identification: who the track is.")
    face_id: str | None = Field(None, description="Identification: the enrolled face matched.")
    distance: float | None = Field(None, description="Identification: distance to it.")


class VideoSummary(BaseModel):
    """How a video ended: a video that ends before its container said it would
    (truncated, corrupt from some frame on, timestamps that put frames out of
    reach) still succeeds with the frames it had, marked partial."""

    partial: bool = Field(description="True when the video ended before expected_frames.")
    reason: str | None = Field(
        description="Why it is partial: where decoding stopped and what the container "
        "declared; null when not partial."
    )
    expected_frames: int | None = Field(
        description="Frames the task was to process (after stride and max_frames), from the "
        "container; null when it does not say."
    )
    processed_frames: int = Field(description="Frames decoded and processed.")
    last_frame_index: int = Field(description="Index of the last frame processed, from 0.")
    tracks: list[Track] = Field(
        default_factory=list,
        description="Every track, by first appearance; empty when tracker=off.",
    )
    gallery_searches: int = Field(
        0, description="Identification: gallery searches made (once per track, not per frame)."
    )


class FaceVideoResult(BaseModel):
    frames: list[FaceFrame]
    summary: VideoSummary | None = Field(None, description="How the video ended.")


class ObjectVideoResult(BaseModel):
    frames: list[ObjectFrame]
    summary: VideoSummary | None = Field(None, description="How the video ended.")


class Keypoint(BaseModel):
    x: float
    y: float
    name: str | None = Field(None, description="What the point is (nose, left_wrist...).")
    score: float | None = None


class GenericItem(BaseModel):
    """One thing a backend of the generic shape found; it carries what its backend gives."""

    box: Box | None = None
    label: str | None = None
    score: float | None = None
    keypoints: list[Keypoint] | None = None
    mask: list[tuple[float, float]] | None = Field(
        None, description="A polygon outlining the thing: [x, y] pixels."
    )
    track_id: int | None = Field(None, description="Videos: its track, stable across frames.")


class GenericImageResult(BaseModel):
    """The result of a kind whose backend declares no shape of its own."""

    items: list[GenericItem]
    image_width: int
    image_height: int


class GenericFrame(GenericImageResult, FrameFields):
    pass


class GenericVideoResult(BaseModel):
    frames: list[GenericFrame]
    summary: VideoSummary | None = Field(None, description="How the video ended.")


GENERIC_RESULTS = {"image": GenericImageResult, "video": GenericVideoResult}


class Match(BaseModel):
    """An enrolled face close enough to be the same person."""

    face_id: str = Field(description="The enrolled face (a UUID).")
    subject: str = Field(description="Whose face it is.")
    distance: float = Field(description="Encoding distance, >= 0 and <= the threshold.")


class IdentifiedFace(Face):
    matches: list[Match] = Field(
        description="Enrolled faces within the threshold, closest first (at most top_k); "
        "empty: unknown."
    )
    subject: str | None = Field(description="The closest match's subject; null when unknown.")


class FaceIdentificationResult(BaseModel):
    faces: list[IdentifiedFace]
    image_width: int
    image_height: int
    threshold: float = Field(description="The threshold applied.")


class IdentifiedFrame(FrameFields):
    faces: list[IdentifiedFace]
    image_width: int
    image_height: int


class FaceIdentificationVideoResult(BaseModel):
    frames: list[IdentifiedFrame]
    summary: VideoSummary | None = Field(None, description="How the video ended.")


class Progress(BaseModel):
    done: int = Field(description="Frames done (a video); an image: 1 once it succeeded, else 0.")
    total: int | None = Field(
        description="Frames expected, when known (a video); an image: 1. A video that ends "
        "early stops short of it and says so in result.summary (partial)."
    )


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
    tenant: str | None = Field(
        None, description="Whose task it is: shown to admin keys only (they see every tenant)."
    )
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


# Answers any route behind a key can give, before the route itself runs.
_ACCESS_ERRORS = {
    "401": "Missing, unknown or revoked API key (or an ended session)",
    "429": "Over the key's request rate (see Retry-After)",
    "503": "The key store (Redis) cannot be reached (see Retry-After)",
}
_JSON_BODY_ERRORS = {
    "400": "The body is not valid JSON",
    "413": "The body is over the 1 MiB limit for JSON bodies",
    "415": "The body is not JSON",
}
_OPEN_PATHS = ("/", "/healthz", "/readyz")
_CSRF_REFUSAL = (
    "Signed in by the session cookie, but not provably the console's "
    "(another Origin or Sec-Fetch-Site, or no X-CSRF-Token); API keys are not checked"
)


def document_access(schema: dict[str, Any]) -> dict[str, Any]:
    """Add to an OpenAPI document the errors every keyed route can answer (the
    key check runs before any route) and those of any JSON body."""

    def error(description: str) -> dict[str, Any]:
        ref = {"$ref": "#/components/schemas/ErrorBody"}
        return {"description": description, "content": {"application/json": {"schema": ref}}}

    for path, operations in schema.get("paths", {}).items():
        if path in _OPEN_PATHS or path.startswith("/console"):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if not (path == "/api/session" and method in ("post", "delete")):
                for status, text in _ACCESS_ERRORS.items():
                    responses.setdefault(status, error(text))
            if path == "/metrics":
                responses.setdefault("403", error("An admin key is needed"))
            if method not in ("get", "head", "options") and path != "/api/session":
                responses.setdefault("403", error(_CSRF_REFUSAL))
            body = operation.get("requestBody", {}).get("content", {})
            if "application/json" in body:
                for status, text in _JSON_BODY_ERRORS.items():
                    responses.setdefault(status, error(text))
    return schema


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
    private: bool = Field(
        False, description="Its uploads are personal data: never kept (no preview of its input)."
    )


class KindList(BaseModel):
    kinds: list[KindInfo]


def task_url(request, task_id: str) -> str:
    """The task's absolute URL (under the app's root path), without a route lookup."""
    return f"{request.base_url}api/task/{task_id}"


# --- face collections ------------------------------------------------------------------


class NewCollection(BaseModel):
    collection_id: str = Field(
        json_schema_extra={"pattern": ids.COLLECTION_ID_PATTERN},
        description=f"{ids.COLLECTION_ID_RULE}; unique per tenant.",
    )
    description: str = Field("", max_length=1024, description="What it is for.")

    @field_validator("collection_id")
    @classmethod
    def _reachable(cls, value: str) -> str:
        problem = ids.collection_id_problem(value)  # the face service's own rule
        if problem is not None:
            raise PydanticCustomError("collection_id", problem)
        return value


class Collection(BaseModel):
    """A collection of known faces (per tenant)."""

    collection_id: str
    description: str
    created_at: str = Field(description="ISO 8601, UTC.")
    face_count: int = Field(description="Faces enrolled now.")
    subject_count: int = Field(description="Distinct subjects among them.")


class CollectionPage(BaseModel):
    collections: list[Collection] = Field(description="By id.")
    next_page_token: str | None = Field(
        description="Pass as `page_token` for the next page; null at the end."
    )


class EnrolledFace(BaseModel):
    """An enrolled face (its encoding never leaves the service)."""

    face_id: str = Field(description="A UUID.")
    subject: str
    external_id: str | None = Field(description="The caller's own id, when given.")
    box: Box | None = Field(description="Where the face was in the enrolled image.")
    created_at: str = Field(description="ISO 8601, UTC.")


class Enrollment(BaseModel):
    faces: list[EnrolledFace] = Field(description="The faces enrolled, largest first.")
    faces_found: int = Field(
        description="Faces found in the image (beyond max_faces, or too small: not enrolled)."
    )
    image_width: int
    image_height: int


class FacePage(BaseModel):
    faces: list[EnrolledFace] = Field(description="In enrollment order.")
    next_page_token: str | None = Field(
        description="Pass as `page_token` for the next page; null at the end."
    )


class SubjectDeleted(BaseModel):
    subject: str
    deleted_faces: int = Field(description="Faces deleted, everywhere.")


class SearchRequest(BaseModel):
    face_id: str = Field(description="An enrolled face of this collection.")
    top_k: ascii_int(ge=1, le=100) | None = Field(None, description="Most matches; default 1.")
    threshold: ascii_float(gt=0, le=4) | None = Field(
        None, description="Largest distance that matches; default 0.6."
    )


class SearchResult(BaseModel):
    face_id: str = Field(description="The face searched with.")
    matches: list[Match] = Field(description="Other faces within the threshold, closest first.")
    threshold: float


class Verification(BaseModel):
    subject: str
    match: bool = Field(description="distance <= threshold: the face is the subject's.")
    distance: float = Field(description="To the subject's closest enrolled face.")
    face_id: str = Field(description="That closest enrolled face.")
    threshold: float
    face: Face = Field(description="The image's face compared: its largest.")
    image_width: int
    image_height: int
