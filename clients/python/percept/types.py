"""The result types every client returns, whichever transport it uses.

Frozen dataclasses, built from the REST API's JSON (`from_json`); a gRPC
response is read as the same JSON (`percept.transport._wire.to_json`), so
each type has one reader. `to_json()` gives back the API's JSON shape, so
`--json` output and the API's answers are the same thing.
Coordinates are pixels in the source image (EXIF orientation applied), origin
top-left.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

Media = Literal["image", "video"]


class JsonType:
    """`to_json()` for a result type: its fields by name, nested types as their
    JSON, tuples as lists, times in ISO 8601; with `skip_none`, fields that are
    None are left out (the API leaves them out too)."""

    __slots__ = ()
    skip_none: ClassVar[bool] = False
    json_skip: ClassVar[tuple[str, ...]] = ()  # fields the JSON leaves out

    def to_json(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name not in self.json_skip and (value is not None or not self.skip_none):
                out[f.name] = _plain(value)
        return out


def _plain(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


class Kind(enum.StrEnum):
    """A built-in task kind. Values are the API's `kind`; `route` is its short
    name. Routes and methods come from their declarations in `percept.rules`;
    other kinds a gateway serves are plain strings (see `Client.kinds()`)."""

    FACE = "face_detection"
    OBJECT = "object_detection"
    IDENTIFY = "face_identification"
    """Faces identified against a face collection (each face carries its matches)."""

    @property
    def route(self) -> str:
        from percept.rules import SHORT_NAMES

        return next(short for short, name in SHORT_NAMES.items() if name == self.value)

    @property
    def faces(self) -> bool:
        """Whether results hold faces (detection or identification): the proto's
        response has a `faces` field."""
        return _holds_faces(self.value)

    def path(self, media: Media) -> str:
        """The submit route: /api/detect/face/image, /api/identify/face/video..."""
        from percept.rules import spec

        return spec(self.value, media).path

    @classmethod
    def parse(cls, value: Kind | str) -> Kind:
        """`Kind.FACE`, "face" or "face_detection" (and the same for the others)."""
        if isinstance(value, Kind):
            return value
        for kind in cls:
            if value in (kind.value, kind.route):
                return kind
        raise ValueError(f"unknown kind {value!r}: use 'face', 'object' or 'identify'")


@functools.cache
def _holds_faces(kind: str) -> bool:
    """`Kind.faces`, looked up in the descriptors once per kind (results ask it per frame)."""
    from percept.rules import method, spec

    return "faces" in method(spec(kind, "image").rpc).output_type.fields_by_name


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class Point:
    """A point in source-image pixels."""

    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Box(JsonType):
    """An axis-aligned box in source-image pixels: width = right - left."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def center(self) -> Point:
        return Point((self.left + self.right) / 2, (self.top + self.bottom) / 2)

    def as_tuple(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom)."""
        return (self.left, self.top, self.right, self.bottom)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Box:
        return cls(data["left"], data["top"], data["right"], data["bottom"])


LANDMARK_PARTS = (
    "chin",
    "left_eyebrow",
    "right_eyebrow",
    "nose_bridge",
    "nose_tip",
    "left_eye",
    "right_eye",
    "top_lip",
    "bottom_lip",
)


@dataclass(frozen=True, slots=True)
class Landmarks:
    """dlib's 68 facial landmarks in 9 named parts, each a polyline."""

    chin: tuple[Point, ...]
    left_eyebrow: tuple[Point, ...]
    right_eyebrow: tuple[Point, ...]
    nose_bridge: tuple[Point, ...]
    nose_tip: tuple[Point, ...]
    left_eye: tuple[Point, ...]
    right_eye: tuple[Point, ...]
    top_lip: tuple[Point, ...]
    bottom_lip: tuple[Point, ...]

    def parts(self) -> dict[str, tuple[Point, ...]]:
        return {name: getattr(self, name) for name in LANDMARK_PARTS}

    def points(self) -> Iterator[Point]:
        for name in LANDMARK_PARTS:
            yield from getattr(self, name)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Landmarks:
        return cls(
            **{name: tuple(Point(x, y) for x, y in data.get(name, ())) for name in LANDMARK_PARTS}
        )

    def to_json(self) -> dict[str, list[list[float]]]:
        return {name: [[p.x, p.y] for p in getattr(self, name)] for name in LANDMARK_PARTS}


@dataclass(frozen=True, slots=True)
class Match(JsonType):
    """An enrolled face close enough to a probe face to be the same person."""

    face_id: str
    subject: str
    distance: float  # >= 0, <= the threshold; lower is more alike

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Match:
        return cls(data["face_id"], data["subject"], float(data["distance"]))


@dataclass(frozen=True, slots=True)
class Face(JsonType):
    """One face: its box, landmarks / the 128-d encoding when asked for, and
    when identifying against a collection its `matches` (closest first; empty:
    unknown). `matches` is None when the call did not identify."""

    skip_none = True

    box: Box
    landmarks: Landmarks | None = None
    encoding: tuple[float, ...] | None = None
    matches: tuple[Match, ...] | None = None
    track_id: int | None = None  # videos and streams: the face's track; None: untracked

    @property
    def subject(self) -> str | None:
        """Who this face is (the closest match's subject); None when unknown."""
        return self.matches[0].subject if self.matches else None

    @property
    def unknown(self) -> bool:
        """Identified against a collection, and no enrolled face is close enough."""
        return self.matches is not None and not self.matches

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Face:
        landmarks = data.get("landmarks")
        encoding = data.get("encoding")
        matches = data.get("matches")
        return cls(
            Box.from_json(data["box"]),
            Landmarks.from_json(landmarks) if landmarks else None,
            tuple(encoding) if encoding else None,
            tuple(Match.from_json(m) for m in matches) if matches is not None else None,
            data.get("track_id") or None,
        )

    def to_json(self) -> dict[str, Any]:
        out = JsonType.to_json(self)
        if self.matches is not None:
            out["subject"] = self.subject
        return out


@dataclass(frozen=True, slots=True)
class Detection(JsonType):
    """One detected object."""

    skip_none = True

    label: str
    class_id: int
    confidence: float  # [0, 1]
    box: Box
    track_id: int | None = None  # videos and streams: the object's track; None: untracked

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Detection:
        return cls(
            data.get("label", ""),
            data.get("class_id", 0),
            data.get("confidence", 0.0),
            Box.from_json(data["box"]),
            data.get("track_id") or None,
        )


class _Items:
    """What image and frame results share: their faces' or detections' boxes."""

    __slots__ = ()
    faces: tuple[Face, ...]
    detections: tuple[Detection, ...]

    @property
    def boxes(self) -> tuple[Box, ...]:
        return tuple(item.box for item in (*self.faces, *self.detections))

    @property
    def subjects(self) -> tuple[str | None, ...]:
        """Identification: who each face is (None: unknown), in face order."""
        return tuple(face.subject for face in self.faces)


def _items_from_json(
    data: Mapping[str, Any], kind: Kind | None = None
) -> tuple[Kind, tuple[Face, ...], tuple[Detection, ...]]:
    if "faces" in data:  # identified: every face has its matches, maybe none
        seed = {"matches": ()} if kind is Kind.IDENTIFY else {}
        faces = tuple(Face.from_json({**seed, **f}) for f in data["faces"])
        if kind is None:
            kind = Kind.IDENTIFY if any(f.matches is not None for f in faces) else Kind.FACE
        return kind, faces, ()
    return Kind.OBJECT, (), tuple(Detection.from_json(d) for d in data.get("detections", ()))


def _items_to_json(kind: Kind, faces, detections) -> dict[str, Any]:
    if kind.faces:
        return {"faces": [f.to_json() for f in faces]}
    return {"detections": [d.to_json() for d in detections]}


@dataclass(frozen=True, slots=True)
class ImageResult(_Items):
    """What one image holds: `faces` for face detection and identification (each
    face with its `matches` then, and `threshold` the distance applied),
    `detections` for objects."""

    kind: Kind
    image_width: int
    image_height: int
    faces: tuple[Face, ...] = ()
    detections: tuple[Detection, ...] = ()
    threshold: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], kind: Kind | None = None) -> ImageResult:
        kind, faces, detections = _items_from_json(data, kind)
        return cls(
            kind,
            data["image_width"],
            data["image_height"],
            faces,
            detections,
            data.get("threshold"),
        )

    def to_json(self) -> dict[str, Any]:
        out = {
            **_items_to_json(self.kind, self.faces, self.detections),
            "image_width": self.image_width,
            "image_height": self.image_height,
        }
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out


@dataclass(frozen=True, slots=True)
class Track(JsonType):
    """One face or object over a video (or a stream so far): when it was first
    and last seen, in how many frames, its best sighting (the highest-confidence
    box, or the best face), its class by vote (objects) or who it is
    (identification; None: unknown)."""

    skip_none = True

    track_id: int
    first_frame_index: int
    first_timestamp: float
    last_frame_index: int
    last_timestamp: float
    frames_seen: int
    best_frame_index: int
    best_box: Box
    best_score: float
    label: str | None = None
    class_id: int | None = None
    subject: str | None = None
    face_id: str | None = None
    distance: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Track:
        return cls(
            data["track_id"],
            data["first_frame_index"],
            data["first_timestamp"],
            data["last_frame_index"],
            data["last_timestamp"],
            data["frames_seen"],
            data["best_frame_index"],
            Box.from_json(data["best_box"]),
            data["best_score"],
            data.get("label") or None,
            data.get("class_id") if data.get("label") else None,
            data.get("subject") if data.get("face_id") else None,
            data.get("face_id") or None,
            data.get("distance") if data.get("face_id") else None,
        )


@dataclass(frozen=True, slots=True)
class VideoSummary(JsonType):
    """How a video ended. `partial`: it ended before its container said it would
    (truncated, corrupt from some frame on, timestamps that put frames out of
    reach); the frames before the break are still in the result, and `reason`
    says where decoding stopped. `expected_frames` is None when the container
    does not say how long the video is."""

    partial: bool
    reason: str | None
    expected_frames: int | None
    processed_frames: int
    last_frame_index: int
    tracks: tuple[Track, ...] = ()  # every track, by first appearance; () when untracked
    gallery_searches: int = 0  # identification: gallery searches made

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VideoSummary:
        return cls(
            bool(data.get("partial")),
            data.get("reason") or None,
            data.get("expected_frames") or None,
            int(data.get("processed_frames") or 0),
            int(data.get("last_frame_index") or 0),
            tuple(Track.from_json(t) for t in data.get("tracks") or ()),
            int(data.get("gallery_searches") or 0),
        )


@dataclass(frozen=True, slots=True)
class FrameResult(_Items):
    """One processed video (or live) frame.

    `timestamp` is seconds from the start of the video (None for live frames);
    `expected_frames` is how many frames the whole request will process, when
    the server knows (gRPC video streams only). `summary` is set on a gRPC
    video stream's last frame only: how the video ended (partial or not).
    """

    kind: Kind
    frame_index: int
    timestamp: float | None
    image_width: int
    image_height: int
    faces: tuple[Face, ...] = ()
    detections: tuple[Detection, ...] = ()
    expected_frames: int | None = None
    summary: VideoSummary | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], kind: Kind | None = None) -> FrameResult:
        kind, faces, detections = _items_from_json(data, kind)
        return cls(
            kind,
            data["frame_index"],
            data.get("timestamp"),
            data["image_width"],
            data["image_height"],
            faces,
            detections,
            data.get("expected_frames") or None,
            VideoSummary.from_json(data["summary"]) if data.get("summary") else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "frame_index": self.frame_index,
            "timestamp": self.timestamp,
            **_items_to_json(self.kind, self.faces, self.detections),
            "image_width": self.image_width,
            "image_height": self.image_height,
        }


@dataclass(frozen=True, slots=True)
class VideoResult(JsonType):
    """Every processed frame of a video, in frame order, and how the video
    ended (`summary`; None from a server that does not say)."""

    skip_none, json_skip = True, ("kind",)

    kind: Kind
    frames: tuple[FrameResult | GenericResult, ...]
    summary: VideoSummary | None = None

    @property
    def partial(self) -> bool:
        """The video ended before its container said it would (see summary.reason)."""
        return self.summary is not None and self.summary.partial

    @classmethod
    def from_json(cls, data: Mapping[str, Any], kind: Kind) -> VideoResult:
        summary = data.get("summary")
        return cls(
            kind,
            tuple(_frame(f, kind) for f in data.get("frames", ())),
            VideoSummary.from_json(summary) if summary else None,
        )


@dataclass(frozen=True, slots=True)
class Keypoint:
    """One named point of an item (a pose's nose...); name and score when the model says."""

    x: float
    y: float
    name: str | None = None
    score: float | None = None


@dataclass(frozen=True, slots=True)
class GenericItem:
    """One thing a kind without a typed result found: any of a box, a label, a
    score, keypoints, a mask (a polygon, in pixels) and a track."""

    box: Box | None = None
    label: str | None = None
    score: float | None = None
    keypoints: tuple[Keypoint, ...] = ()
    mask: tuple[tuple[float, float], ...] | None = None
    track_id: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GenericItem:
        box, mask = data.get("box"), data.get("mask")
        return cls(
            Box.from_json(box) if box else None,
            data.get("label"),
            data.get("score"),
            tuple(Keypoint(p["x"], p["y"], p.get("name"), p.get("score"))
                  for p in data.get("keypoints") or ()),
            tuple((x, y) for x, y in mask) if mask is not None else None,
            data.get("track_id"),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class GenericResult:
    """The result of a kind the SDK has no type for (one the gateway declares
    with the generic shape): an image's items, or a video frame's (with its
    `frame_index` and `timestamp`). `raw` is the JSON as the API sent it."""

    image_width: int
    image_height: int
    items: tuple[GenericItem, ...]
    raw: Mapping[str, Any]
    frame_index: int | None = None
    timestamp: float | None = None

    @property
    def boxes(self) -> tuple[Box, ...]:
        return tuple(item.box for item in self.items if item.box is not None)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GenericResult:
        return cls(
            data.get("image_width", 0), data.get("image_height", 0),
            tuple(GenericItem.from_json(i) for i in data.get("items", ())), dict(data),
            data.get("frame_index"), data.get("timestamp"),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True, slots=True)
class KindInfo:
    """A task kind a gateway serves (GET /api/kinds): its route, the gRPC method
    behind it and its options (a JSON schema each)."""

    kind: str
    media: Media
    path: str
    summary: str = ""
    backend: str = ""
    rpc: str = ""
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    private: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KindInfo:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def _frame(data: Mapping[str, Any], kind: Kind | None = None) -> FrameResult | GenericResult:
    """A video frame's result: a GenericResult when it lists `items`."""
    return GenericResult.from_json(data) if "items" in data else FrameResult.from_json(data, kind)


@dataclass(frozen=True, slots=True)
class Progress(JsonType):
    """Frames done of `total` (None until the server knows); an image is one
    item: 1 of 1 once it succeeded, 0 of 1 before or when it failed."""

    done: int
    total: int | None

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Progress:
        data = data or {}
        return cls(int(data.get("done") or 0), data.get("total") or None)


@dataclass(frozen=True, slots=True)
class TaskError(JsonType):
    """Why a task failed: `code` is the API's error code (e.g. invalid_argument)."""

    code: str
    message: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskError:
        return cls(str(data.get("code", "unknown")), str(data.get("message", "")))


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass(frozen=True, slots=True)
class Task:
    """A task of the REST gateway: its status, progress and, once ended, result or error.

    A task just submitted (202) knows only its id, kind, media and status;
    `Client.task()` / `Client.wait()` return the full record.
    """

    task_id: str
    kind: Kind | str  # a str for a kind beyond the built-in ones
    media: Media
    status: TaskStatus
    progress: Progress = Progress(0, None)
    attempts: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None
    status_url: str | None = None
    replica: str | None = None
    result: ImageResult | VideoResult | GenericResult | None = None
    error: TaskError | None = None
    tenant: str | None = None  # whose it is: told to admin keys only

    @property
    def ended(self) -> bool:
        return self.status.ended

    @property
    def succeeded(self) -> bool:
        return self.status is TaskStatus.SUCCEEDED

    def raise_for_status(self) -> Task:
        """Raise TaskFailed (or TaskCancelled) unless the task succeeded or is still going."""
        from percept.errors import TaskCancelled, TaskFailed

        if self.status is TaskStatus.FAILED:
            raise TaskFailed(self)
        if self.status is TaskStatus.CANCELLED:
            raise TaskCancelled(self)
        return self

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Task:
        try:
            kind: Kind | str = Kind.parse(data["kind"])
        except ValueError:
            kind = data["kind"]  # a kind the gateway declares beyond the built-in ones
        raw = data.get("result")
        result: ImageResult | VideoResult | GenericResult | None = None
        if raw is not None and data["media"] == "video":
            result = VideoResult.from_json(raw, kind)  # type: ignore[arg-type]
        elif raw is not None:
            typed = isinstance(kind, Kind) and "items" not in raw
            result = ImageResult.from_json(raw, kind) if typed else GenericResult.from_json(raw)  # type: ignore[arg-type]
        error = data.get("error")
        return cls(
            task_id=data["task_id"],
            kind=kind,
            media=data["media"],
            status=TaskStatus(data["status"]),
            progress=Progress.from_json(data.get("progress")),
            attempts=int(data.get("attempts") or 0),
            options=dict(data.get("options") or {}),
            created_at=_time(data.get("created_at")),
            started_at=_time(data.get("started_at")),
            finished_at=_time(data.get("finished_at")),
            expires_at=_time(data.get("expires_at")),
            status_url=data.get("status_url"),
            replica=data.get("replica"),
            result=result,
            error=TaskError.from_json(error) if error else None,
            tenant=data.get("tenant"),
        )

    def to_json(self) -> dict[str, Any]:
        """The task as the API's JSON (GET /api/task/{id})."""
        body: dict[str, Any] = {
            "task_id": self.task_id,
            "kind": str(self.kind),
            "media": self.media,
            "status": self.status.value,
            "progress": self.progress.to_json(),
            "attempts": self.attempts,
            "options": dict(self.options),
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "expires_at": _iso(self.expires_at),
        }
        if self.status_url:
            body["status_url"] = self.status_url
        if self.replica:
            body["replica"] = self.replica
        if self.tenant:
            body["tenant"] = self.tenant
        if self.result is not None:
            body["result"] = self.result.to_json()
        if self.error is not None:
            body["error"] = self.error.to_json()
        return body


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """The task changed status; the last one (an ended status) carries the whole task."""

    id: str
    status: TaskStatus
    error: TaskError | None = None
    task: Task | None = None


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    id: str
    progress: Progress


@dataclass(frozen=True, slots=True)
class FrameEvent:
    """One video frame's result, as soon as it is done."""

    id: str
    frame: FrameResult | GenericResult


TaskEvent = StatusEvent | ProgressEvent | FrameEvent


def event_from_sse(event_id: str, event_type: str, data: Mapping[str, Any]) -> TaskEvent | None:
    """A typed event from one Server-Sent Event; None for a type this SDK does not know."""
    if event_type == "status":
        error = data.get("error")
        task = data.get("task")
        return StatusEvent(
            event_id,
            TaskStatus(data["status"]),
            TaskError.from_json(error) if error else None,
            Task.from_json(task) if task else None,
        )
    if event_type == "progress":
        return ProgressEvent(event_id, Progress.from_json(data))
    if event_type == "frame":
        return FrameEvent(event_id, _frame(data))
    return None


def _page(cls, body: Mapping[str, Any], item: Any, items: str, next_field="next_page_token"):
    """One page of a listing: its items, read by `item.from_json`, and the next token."""
    return cls(tuple(item.from_json(x) for x in body.get(items, ())), body.get(next_field) or None)


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of GET /api/tasks, newest first; pass `next_cursor` for the next."""

    tasks: tuple[Task, ...]
    next_cursor: str | None

    from_json = classmethod(lambda cls, body: _page(cls, body, Task, "tasks", "next_cursor"))


@dataclass(frozen=True, slots=True)
class Health:
    """`alive`: the server answers; `ready`: every check passes (e.g. redis, face, object)."""

    alive: bool
    ready: bool
    checks: Mapping[str, bool]


# --- gRPC only -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaceMatch:
    """One probe face against one reference face: `match` is distance <= tolerance."""

    probe_index: int
    reference_index: int
    distance: float
    match: bool


@dataclass(frozen=True, slots=True)
class Comparison:
    """CompareFaces: the probe's faces, the reference's (empty when encodings were given),
    and every pair's distance, probe-major."""

    probe_faces: tuple[Face, ...]
    reference_faces: tuple[Face, ...]
    matches: tuple[FaceMatch, ...]
    tolerance: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Comparison:
        faces = lambda name: tuple(Face.from_json(f) for f in data.get(name, ()))  # noqa: E731
        matches = tuple(
            FaceMatch(m.get("probe_index", 0), m.get("reference_index", 0),
                      m.get("distance", 0.0), bool(m.get("match")))
            for m in data.get("matches", ())
        )  # fmt: skip
        return cls(faces("probe_faces"), faces("reference_faces"), matches, data["tolerance"])


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The object service's loaded model: `class_names[class_id]` is a detection's label."""

    model_name: str
    backend: str
    device: str
    input_size: int
    class_names: tuple[str, ...]
    weights: str
    task: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelInfo:
        return cls(data["model_name"], data["backend"], data["device"], data["input_size"],
                   tuple(data.get("class_names", ())), data["weights"], data["task"])  # fmt: skip


# --- face collections --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Collection(JsonType):
    """A collection of known faces (per tenant: another tenant's are invisible)."""

    collection_id: str
    description: str
    created_at: datetime | None
    face_count: int
    subject_count: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Collection:
        return cls(
            data["collection_id"],
            data.get("description") or "",
            _time(data.get("created_at")),
            int(data.get("face_count") or 0),
            int(data.get("subject_count") or 0),
        )


@dataclass(frozen=True, slots=True)
class CollectionPage:
    """One page of collections, by id; pass `next_page_token` for the next (None: last)."""

    collections: tuple[Collection, ...]
    next_page_token: str | None

    from_json = classmethod(lambda cls, body: _page(cls, body, Collection, "collections"))


@dataclass(frozen=True, slots=True)
class EnrolledFace(JsonType):
    """An enrolled face. Its encoding never leaves the service."""

    face_id: str
    subject: str
    external_id: str | None
    box: Box | None
    created_at: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EnrolledFace:
        box = data.get("box")
        return cls(
            data["face_id"],
            data["subject"],
            data.get("external_id") or None,
            Box.from_json(box) if box else None,
            _time(data.get("created_at")),
        )


@dataclass(frozen=True, slots=True)
class FacePage:
    """One page of enrolled faces, in enrollment order."""

    faces: tuple[EnrolledFace, ...]
    next_page_token: str | None

    from_json = classmethod(lambda cls, body: _page(cls, body, EnrolledFace, "faces"))


@dataclass(frozen=True, slots=True)
class Enrollment(JsonType):
    """What enrolling an image did: the faces stored (largest first) and how many
    the image held (`faces_found`; those beyond max_faces or too small are not stored)."""

    faces: tuple[EnrolledFace, ...]
    faces_found: int
    image_width: int
    image_height: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Enrollment:
        return cls(
            tuple(EnrolledFace.from_json(f) for f in data.get("faces", ())),
            int(data.get("faces_found") or 0),
            data["image_width"],
            data["image_height"],
        )


@dataclass(frozen=True, slots=True)
class Identification(JsonType):
    """Who a face is: enrolled faces within `threshold`, closest first; none: unknown.
    (What `search` returns for an enrolled face, itself left out.)"""

    matches: tuple[Match, ...]
    threshold: float | None = None
    face_id: str | None = None  # the face searched with

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None

    @property
    def subject(self) -> str | None:
        return self.matches[0].subject if self.matches else None

    @property
    def unknown(self) -> bool:
        return not self.matches

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Identification:
        return cls(
            tuple(Match.from_json(m) for m in data.get("matches", ())),
            data.get("threshold"),
            data.get("face_id"),
        )


@dataclass(frozen=True, slots=True)
class Verification(JsonType):
    """Whether an image's largest face is `subject`: `match` is distance <= threshold;
    `face_id` is the subject's closest enrolled face, `face` the image's face compared."""

    subject: str
    match: bool
    distance: float
    face_id: str
    threshold: float
    face: Face
    image_width: int
    image_height: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verification:
        return cls(
            data["subject"],
            bool(data["match"]),
            float(data["distance"]),
            data["face_id"],
            float(data["threshold"]),
            Face.from_json(data["face"]),
            data["image_width"],
            data["image_height"],
        )


@dataclass(frozen=True, slots=True)
class VideoURI:
    """A video the gRPC service opens itself (a path under its allowed directories,
    or a URL whose scheme it allows) instead of bytes sent with the request."""

    uri: str


@dataclass(frozen=True)
class SourceStatus:
    """How a live source is doing, as its source worker last reported."""

    state: str  # connecting, live, reconnecting, failed, paused, ended
    reason: str  # why it is not live ('' when it is)
    fps_in: float  # frames read from the stream per second
    fps_processed: float  # frames processed per second
    frames_dropped: int  # frames lost while the model was busy
    reconnects: int  # times the stream dropped and was reopened
    last_frame_at: datetime | None
    latency_ms: float  # capture to processed, median of the last frames
    worker: str  # the source worker running it

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SourceStatus:
        return cls(
            data.get("state", "connecting"),
            data.get("reason", ""),
            float(data.get("fps_in") or 0),
            float(data.get("fps_processed") or 0),
            int(data.get("frames_dropped") or 0),
            int(data.get("reconnects") or 0),
            _unix(data.get("last_frame_at")),
            float(data.get("latency_ms") or 0),
            data.get("worker", ""),
        )


@dataclass(frozen=True)
class Source:
    """A live source the stack watches (per tenant): its URL (credentials
    masked), what runs on it, its rules, status and counts per zone and line."""

    source_id: str
    name: str
    url: str
    detect: str
    max_fps: float
    paused: bool
    zones: tuple[dict[str, Any], ...]
    lines: tuple[dict[str, Any], ...]
    status: SourceStatus
    counts: dict[str, dict[str, int]]
    raw: dict[str, Any]  # every field the API sent

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Source:
        return cls(
            data["id"],
            data.get("name", ""),
            data["url"],
            data.get("detect", "objects"),
            float(data.get("max_fps") or 0),
            bool(data.get("paused")),
            tuple(data.get("zones") or ()),
            tuple(data.get("lines") or ()),
            SourceStatus.from_json(data.get("status") or {}),
            dict(data.get("counts") or {}),
            dict(data),
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


def _unix(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(float(value), tz=UTC) if value else None
