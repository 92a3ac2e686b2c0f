"""`percept`: the SDK's command line (Typer for the commands, Rich for tables and progress).

    percept detect face photo.jpg --landmarks
    percept detect object clip.mp4 --classes circle,star --json
    percept collections create staff --description "people allowed in"
    percept faces enroll staff ann.jpg --subject ann
    percept identify door-camera.mp4 --collection staff
    percept task list --status running
    percept health

Exit codes: 0 ok; 1 the work failed (a task failed or was cancelled, the server
failed, a collection to create exists already); 2 usage (bad arguments, a file
that cannot be read, a request the server refused as invalid (an image without
a usable face), an unknown task, collection, face or subject, a refused API
key); 3 the server cannot be reached (or has no replica to serve).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from percept import errors, stack
from percept.inputs import guess_media
from percept.options import FaceOptions, ObjectOptions
from percept.types import (
    Collection,
    EnrolledFace,
    Face,
    FrameResult,
    Health,
    ImageResult,
    Kind,
    ProgressEvent,
    StatusEvent,
    Task,
    VideoResult,
)


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    UNREACHABLE = 3


USAGE_ERRORS = (
    errors.InvalidInput,
    errors.TooLarge,
    errors.NotFound,
    errors.Unauthorized,
    errors.Forbidden,
)

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

app = typer.Typer(
    name="percept",
    help="Face and object detection through a Percept gateway.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 ok, 1 the work failed, 2 usage error, 3 server unreachable.",
)
detect_app = typer.Typer(help="Detect faces or objects in images and videos.", no_args_is_help=True)
task_app = typer.Typer(help="Show, follow, cancel and list tasks.", no_args_is_help=True)
collections_app = typer.Typer(
    help="Create, list, show and delete face collections.", no_args_is_help=True
)
faces_app = typer.Typer(
    help="Enroll, list and delete the faces of a collection.", no_args_is_help=True
)
app.add_typer(detect_app, name="detect")
app.add_typer(task_app, name="task")
app.add_typer(collections_app, name="collections")
app.add_typer(faces_app, name="faces")

# --- options shared by the commands ------------------------------------------------------------

Server = Annotated[
    str | None,
    typer.Option(
        "--server",
        "-s",
        envvar="PERCEPT_URL",
        help="Gateway URL (default: the running `make run` stack's, found in .run/stack.json, "
        "else http://127.0.0.1:8000).",
        show_default=False,
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="PERCEPT_API_KEY",
        help="API key, sent as 'Authorization: Bearer <key>' (default: the `make run` "
        "stack's admin key, when the server is the stack's).",
        show_default=False,
    ),
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print JSON (the API's task objects) instead of tables.")
]
Timeout = Annotated[
    float, typer.Option("--timeout", help="Seconds the whole command may wait for the work.")
]
DEFAULT_SERVER = None  # PERCEPT_URL, else the stack's (percept.stack), else :8000
Inputs = Annotated[
    list[Path],
    typer.Argument(
        help="Image (JPEG, PNG, WebP, BMP) or video files.",
        metavar="IMAGE_OR_VIDEO",
        exists=True,
        dir_okay=False,
        readable=True,
        show_default=False,
    ),
]
FrameStride = Annotated[
    int | None, typer.Option(min=1, help="Videos: process every Nth frame.", show_default=False)
]
MaxFrames = Annotated[
    int | None,
    typer.Option(min=0, help="Videos: stop after this many processed frames.", show_default=False),
]


class TrackerChoice(enum.StrEnum):
    bytetrack = "bytetrack"
    botsort = "botsort"
    off = "off"


WebhookOpt = Annotated[
    str | None,
    typer.Option(
        "--webhook",
        help="A webhook subscription id (sub_...): each task's end event goes to it.",
        show_default=False,
    ),
]

TrackerOpt = Annotated[
    TrackerChoice | None,
    typer.Option(
        help="Videos: how faces or objects are tracked across frames (bytetrack, the "
        "default; botsort; off).",
        show_default=False,
    ),
]
Draw = Annotated[
    Path | None,
    typer.Option(
        help="Write the image with its boxes drawn to this file (or, for several images, "
        "into this directory).",
        show_default=False,
    ),
]
Concurrency = Annotated[int, typer.Option(min=1, help="Uploads in flight at once.")]


# --- errors -> exit codes --------------------------------------------------------------------


def exit_code_for(error: BaseException) -> ExitCode:
    if isinstance(error, errors.Unavailable):
        return ExitCode.UNREACHABLE
    if isinstance(error, (*USAGE_ERRORS, ValueError, TypeError, OSError)):
        return ExitCode.USAGE
    return ExitCode.FAILED


def fail(error: BaseException) -> NoReturn:
    err.print(f"[red]error:[/red] {Text(str(error) or type(error).__name__).plain}")
    default = isinstance(error, errors.Unavailable) and stack.DEFAULT_URL in str(error)
    if default and stack.find_stack() is None:
        err.print(
            "no running `make run` stack was found (.run/stack.json here or in a parent, "
            "or PERCEPT_RUN_DIR): start one with `make run`, or name the gateway with "
            "--server / PERCEPT_URL"
        )
    raise typer.Exit(exit_code_for(error))


def _client(server: str | None, api_key: str | None, timeout: float):
    from percept.transport.rest import AsyncClient

    return AsyncClient(server, api_key=api_key, timeout=min(30.0, timeout), wait_timeout=timeout)


def _run(coro) -> Any:
    try:
        return asyncio.run(coro)
    except (errors.PerceptError, ValueError, TypeError, OSError) as error:
        fail(error)


# --- output ------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def result_table(title: str, result: ImageResult | FrameResult) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    if result.kind is Kind.IDENTIFY:
        table.add_column("subject")
        table.add_column("distance", justify="right")
        for name in ("left", "top", "right", "bottom"):
            table.add_column(name, justify="right")
        table.add_column("other matches")
        for i, face in enumerate(result.faces):
            b = face.box
            best = face.matches[0] if face.matches else None
            table.add_row(
                str(i),
                best.subject if best else Text("unknown", style="yellow"),
                f"{best.distance:.3f}" if best else "",
                *map(_fmt, b.as_tuple()),
                ", ".join(f"{m.subject} {m.distance:.3f}" for m in (face.matches or ())[1:]),
            )
    elif result.kind is Kind.FACE:
        for name in ("left", "top", "right", "bottom", "width", "height"):
            table.add_column(name, justify="right")
        table.add_column("landmarks")
        table.add_column("encoding")
        for i, face in enumerate(result.faces):
            b = face.box
            table.add_row(
                str(i),
                *map(_fmt, (b.left, b.top, b.right, b.bottom, b.width, b.height)),
                "68 points" if face.landmarks else "",
                f"{len(face.encoding)} values" if face.encoding else "",
            )
    else:
        table.add_column("label")
        table.add_column("confidence", justify="right")
        for name in ("left", "top", "right", "bottom"):
            table.add_column(name, justify="right")
        for i, d in enumerate(result.detections):
            b = d.box
            table.add_row(str(i), d.label, f"{d.confidence:.3f}", *map(_fmt, b.as_tuple()))
    return table


def _who(face: Face) -> str:
    return face.subject or "unknown"


def video_table(title: str, result: VideoResult) -> Table:
    noun = "faces" if result.kind.faces else "objects"
    table = Table(title=title, title_justify="left")
    for name, justify in (("frame", "right"), ("time (s)", "right"), (noun, "right")):
        table.add_column(name, justify=justify)
    table.add_column(
        {
            Kind.FACE: "boxes (left, top, right, bottom)",
            Kind.IDENTIFY: "who (left, top, right, bottom)",
        }.get(result.kind, "labels")
    )
    for frame in result.frames:
        if result.kind is Kind.IDENTIFY:
            detail = "  ".join(
                f"{_who(f)} (" + ", ".join(map(_fmt, f.box.as_tuple())) + ")" for f in frame.faces
            )
        elif result.kind is Kind.FACE:
            detail = "  ".join(
                "(" + ", ".join(map(_fmt, f.box.as_tuple())) + ")" for f in frame.faces
            )
        else:
            detail = ", ".join(f"{d.label} {d.confidence:.2f}" for d in frame.detections)
        count = len(frame.faces) + len(frame.detections)
        stamp = "" if frame.timestamp is None else f"{frame.timestamp:.2f}"
        table.add_row(str(frame.frame_index), stamp, str(count), detail)
    return table


def tracks_table(title: str, result: VideoResult) -> Table:
    """The video's tracks: who or what, when first and last seen, in how many frames."""
    table = Table(title=title, title_justify="left")
    table.add_column("track", justify="right")
    table.add_column("who" if result.kind is Kind.IDENTIFY else "class")
    for name in ("first frame", "first (s)", "last frame", "last (s)", "frames", "best frame"):
        table.add_column(name, justify="right")
    for t in result.summary.tracks if result.summary else ():
        if result.kind is Kind.IDENTIFY:
            what = (
                f"{t.subject} ({t.distance:.3f})" if t.subject else Text("unknown", style="yellow")
            )
        else:
            what = t.label or ""
        table.add_row(
            str(t.track_id), what, str(t.first_frame_index), f"{t.first_timestamp:.2f}",
            str(t.last_frame_index), f"{t.last_timestamp:.2f}", str(t.frames_seen),
            str(t.best_frame_index),
        )  # fmt: skip
    return table


def task_summary(task: Task) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    status_style = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}.get(
        task.status.value, ""
    )
    progress = f"{task.progress.done}/{task.progress.total or '?'}" if task.media == "video" else ""
    rows = [
        ("task", task.task_id),
        ("kind", f"{task.kind.route} {task.media}"),
        ("status", Text(task.status.value, style=status_style)),
        ("progress", progress),
        ("attempts", str(task.attempts)),
        ("created", str(task.created_at or "")),
        ("finished", str(task.finished_at or "")),
    ]
    if task.error:
        rows.append(("error", f"{task.error.code}: {task.error.message}"))
    for key, value in rows:
        if value:
            table.add_row(key, value)
    return table


def show_task(task: Task, title: str | None = None) -> None:
    title = title or task.task_id
    if isinstance(task.result, ImageResult):
        r = task.result
        count = len(r.faces) + len(r.detections)
        noun = ("face" if r.kind.faces else "object") + ("" if count == 1 else "s")
        out.print(result_table(f"{title}: {count} {noun} ({r.image_width}×{r.image_height})", r))
    elif isinstance(task.result, VideoResult):
        out.print(video_table(f"{title}: {len(task.result.frames)} frames", task.result))
        tracks = task.result.summary.tracks if task.result.summary else ()
        if tracks:
            out.print(tracks_table(f"{title}: {len(tracks)} tracks", task.result))
        if task.result.partial:  # the frames above are good; the rest never decoded
            reason = task.result.summary.reason if task.result.summary else ""
            err.print(f"[yellow]partial video[/]: {escape(reason or '')}")
    else:
        out.print(task_summary(task))


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()


class RateColumn(ProgressColumn):
    """Items per second (Rich's own speed columns are for bytes)."""

    def __init__(self, unit: str = "/s") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f}{self.unit}", style="progress.data.speed")


def progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,  # scripts get no bar on stderr; a person does
    )


# --- detect ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    path: Path
    task: Task | None = None
    error: BaseException | None = None


async def _follow(client, task: Task, progress: Progress, bar, unit_total: bool) -> Task:
    """Follow a task's events to its end, moving `bar` with its frames."""
    final = task
    async for event in client.events(task):
        if isinstance(event, ProgressEvent) and unit_total:
            progress.update(bar, completed=event.progress.done, total=event.progress.total)
        elif isinstance(event, StatusEvent) and event.status.ended:
            final = event.task or await client.task(task)
    if unit_total and final.succeeded:
        done = final.progress.done or progress.tasks[bar].completed
        progress.update(bar, completed=done, total=progress.tasks[bar].total or done)
    return final


async def _detect(
    kind: Kind,
    paths: Sequence[Path],
    options: FaceOptions | ObjectOptions,
    server: str | None,
    api_key: str | None,
    timeout: float,
    concurrency: int,
    extra: dict[str, Any] | None = None,
) -> list[Outcome]:
    media = {p: guess_media(p) for p in paths}
    images = [p for p in paths if media[p] == "image"]
    image_options = dataclasses.replace(options, frame_stride=None, max_frames=None)
    limit = asyncio.Semaphore(concurrency)
    async with _client(server, api_key, timeout) as client:
        with progress_bar() as progress:
            batch = (
                progress.add_task(f"{len(images)} images", total=len(images))
                if len(images) > 1
                else None
            )

            async def one(path: Path) -> Outcome:
                try:
                    async with limit:
                        task = await client.submit(
                            kind,
                            path,
                            options if media[path] == "video" else image_options,
                            media=media[path],
                            **(extra or {}),
                        )
                    if media[path] == "video":
                        bar = progress.add_task(path.name, total=None)
                        return Outcome(path, await _follow(client, task, progress, bar, True))
                    if batch is None:
                        bar = progress.add_task(path.name, total=1)
                        final = await client.wait(task)
                        progress.update(bar, completed=1)
                    else:
                        final = await client.wait(task)
                        progress.advance(batch)
                    return Outcome(path, final)
                except (errors.PerceptError, ValueError, OSError) as error:
                    return Outcome(path, error=error)

            return list(await asyncio.gather(*(one(p) for p in paths)))


def _draw(outcomes: list[Outcome], target: Path) -> None:
    from percept.draw import draw

    drawable = [
        o for o in outcomes if o.task is not None and isinstance(o.task.result, ImageResult)
    ]
    if not drawable:
        return
    many = len(drawable) > 1 or target.is_dir()
    if many:
        target.mkdir(parents=True, exist_ok=True)
    for o in drawable:
        destination = target / o.path.name if many else target
        draw(o.path, o.task.result).save(destination)  # type: ignore[union-attr, arg-type]
        err.print(f"drew {o.path} -> {destination}")


def _report(outcomes: list[Outcome], as_json: bool, draw_to: Path | None) -> NoReturn:
    if as_json:
        items = []
        for o in outcomes:
            if o.task is not None:
                items.append({"input": str(o.path), **o.task.to_json()})
            else:
                code = getattr(o.error, "code", None) or type(o.error).__name__
                items.append(
                    {"input": str(o.path), "error": {"code": code, "message": str(o.error)}}
                )
        print_json(items)
    else:
        for o in outcomes:
            if o.task is not None and o.task.succeeded:
                show_task(o.task, title=str(o.path))
    if draw_to is not None:
        _draw(outcomes, draw_to)
    codes = set()
    for o in outcomes:
        if o.error is not None:
            err.print(f"[red]{o.path}:[/red] {o.error}")
            codes.add(exit_code_for(o.error))
        elif o.task is not None and not o.task.succeeded:
            reason = f"{o.task.error.code}: {o.task.error.message}" if o.task.error else ""
            err.print(f"[red]{o.path}: task {o.task.task_id} {o.task.status.value}[/red] {reason}")
            codes.add(ExitCode.FAILED)
    for code in (ExitCode.UNREACHABLE, ExitCode.USAGE, ExitCode.FAILED):
        if code in codes:
            raise typer.Exit(code)
    raise typer.Exit(ExitCode.OK)


def _run_detect(
    kind, inputs, options, server, api_key, timeout, concurrency, as_json, draw, extra=None
):
    for path in inputs:
        guess_media(path)  # unreadable files fail here, before anything is sent
    outcomes = _run(_detect(kind, inputs, options, server, api_key, timeout, concurrency, extra))
    _report(outcomes, as_json, draw)


class DetectorChoice(enum.StrEnum):
    hog = "hog"
    cnn = "cnn"


@detect_app.command("face")
def detect_face(
    inputs: Inputs,
    landmarks: Annotated[
        bool, typer.Option("--landmarks", help="Return the 68 landmarks.")
    ] = False,
    encodings: Annotated[
        bool, typer.Option("--encodings", help="Return the 128-d encodings.")
    ] = False,
    detector: Annotated[
        DetectorChoice | None,
        typer.Option(
            help="hog (fast, the default) or cnn (accurate, slow on CPU).", show_default=False
        ),
    ] = None,
    upsample: Annotated[
        int | None,
        typer.Option(
            min=0, max=3, help="Upsample N times to find smaller faces.", show_default=False
        ),
    ] = None,
    detection_max_side: Annotated[
        int | None,
        typer.Option(
            min=0, help="Detect on a copy at most this long (pixels).", show_default=False
        ),
    ] = None,
    num_jitters: Annotated[
        int | None,
        typer.Option(min=1, max=100, help="Re-samples per face when encoding.", show_default=False),
    ] = None,
    frame_stride: FrameStride = None,
    max_frames: MaxFrames = None,
    tracker: TrackerOpt = None,
    webhook: WebhookOpt = None,
    as_json: AsJson = False,
    draw: Draw = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    timeout: Timeout = 3600.0,
    concurrency: Concurrency = 4,
) -> None:
    """Find faces in images and videos."""
    options = FaceOptions(
        detector=detector.value if detector else None,  # type: ignore[arg-type]
        upsample=upsample,
        landmarks=landmarks or None,
        encodings=encodings or None,
        detection_max_side=detection_max_side,
        num_jitters=num_jitters,
        frame_stride=frame_stride,
        max_frames=max_frames,
        tracker=tracker.value if tracker else None,  # type: ignore[arg-type]
    )
    extra = {"webhook": webhook} if webhook else None
    _run_detect(
        Kind.FACE, inputs, options, server, api_key, timeout, concurrency, as_json, draw, extra
    )


@detect_app.command("object")
def detect_object(
    inputs: Inputs,
    confidence: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Smallest confidence kept.", show_default=False),
    ] = None,
    iou: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="NMS IoU threshold.", show_default=False)
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option(help="Comma-separated class names or ids to keep.", show_default=False),
    ] = None,
    max_detections: Annotated[
        int | None,
        typer.Option(min=1, max=1000, help="Most detections per image.", show_default=False),
    ] = None,
    frame_stride: FrameStride = None,
    max_frames: MaxFrames = None,
    tracker: TrackerOpt = None,
    webhook: WebhookOpt = None,
    as_json: AsJson = False,
    draw: Draw = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    timeout: Timeout = 3600.0,
    concurrency: Concurrency = 4,
) -> None:
    """Find objects in images and videos."""
    options = ObjectOptions(
        confidence_threshold=confidence,
        iou_threshold=iou,
        classes=classes,
        max_detections=max_detections,
        frame_stride=frame_stride,
        max_frames=max_frames,
        tracker=tracker.value if tracker else None,  # type: ignore[arg-type]
    )
    extra = {"webhook": webhook} if webhook else None
    _run_detect(
        Kind.OBJECT, inputs, options, server, api_key, timeout, concurrency, as_json, draw, extra
    )


# --- identify ----------------------------------------------------------------------------------

CollectionOption = Annotated[
    str,
    typer.Option("--collection", "-c", help="The face collection to search.", show_default=False),
]


@app.command("identify")
def identify(
    inputs: Inputs,
    collection: CollectionOption,
    top_k: Annotated[
        int | None,
        typer.Option(min=1, max=100, help="Matches per face (default 1).", show_default=False),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=4.0,
            help="Largest distance that counts as a match (default 0.6).",
            show_default=False,
        ),
    ] = None,
    upsample: Annotated[
        int | None,
        typer.Option(
            min=0, max=3, help="Upsample N times to find smaller faces.", show_default=False
        ),
    ] = None,
    frame_stride: FrameStride = None,
    max_frames: MaxFrames = None,
    tracker: TrackerOpt = None,
    webhook: WebhookOpt = None,
    as_json: AsJson = False,
    draw: Draw = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    timeout: Timeout = 3600.0,
    concurrency: Concurrency = 4,
) -> None:
    """Name every face in images and videos from a face collection, or "unknown"."""
    if threshold is not None and threshold <= 0:
        fail(ValueError("--threshold must be > 0"))
    options = FaceOptions(
        upsample=upsample,
        frame_stride=frame_stride,
        max_frames=max_frames,
        tracker=tracker.value if tracker else None,  # type: ignore[arg-type]
    )
    extra = {"collection_id": collection, "top_k": top_k, "threshold": threshold}
    extra["webhook"] = webhook
    _run_detect(
        Kind.IDENTIFY, inputs, options, server, api_key, timeout, concurrency, as_json, draw,
        extra,
    )  # fmt: skip


# --- collections and faces -----------------------------------------------------------------------

CollectionId = Annotated[str, typer.Argument(help="The collection's id.", show_default=False)]


def _call(server: str | None, api_key: str | None, timeout: float, fn):
    """Run fn(client) against the gateway; errors become exit codes."""

    async def run():
        async with _client(server, api_key, timeout) as client:
            return await fn(client)

    return _run(run())


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def collections_table(title: str, collections: Sequence[Collection]) -> Table:
    table = Table(title=title, title_justify="left")
    for name, justify in (
        ("collection", "left"),
        ("faces", "right"),
        ("subjects", "right"),
        ("created", "left"),
        ("description", "left"),
    ):
        table.add_column(name, justify=justify)
    for c in collections:
        table.add_row(
            c.collection_id, str(c.face_count), str(c.subject_count), _when(c.created_at),
            c.description,
        )  # fmt: skip
    return table


def faces_table(title: str, faces: Sequence[EnrolledFace]) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("face", "subject", "external id", "box (left, top, right, bottom)", "enrolled"):
        table.add_column(name)
    for f in faces:
        box = "(" + ", ".join(map(_fmt, f.box.as_tuple())) + ")" if f.box else ""
        table.add_row(f.face_id, f.subject, f.external_id or "", box, _when(f.created_at))
    return table


@collections_app.command("create")
def collections_create(
    collection_id: CollectionId,
    description: Annotated[str, typer.Option(help="What the collection is for.")] = "",
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Succeed when it exists already (left as it is).")
    ] = False,
    as_json: AsJson = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """Create an empty face collection (exit 1 when it exists already, unless --exist-ok)."""

    async def create(client) -> tuple[Collection, bool]:
        try:
            return await client.create_collection(collection_id, description), True
        except errors.Conflict:
            if not exist_ok:
                raise
            return await client.collection(collection_id), False

    collection, created = _call(server, api_key, 30.0, create)
    if as_json:
        print_json(collection.to_json())
    elif created:
        out.print(f"created collection [bold]{collection.collection_id}[/bold]")
    else:
        out.print(
            f"collection [bold]{collection.collection_id}[/bold] exists already "
            f"({collection.face_count} faces, {collection.subject_count} subjects)"
        )
    raise typer.Exit(ExitCode.OK)


@collections_app.command("list")
def collections_list(
    limit: Annotated[int, typer.Option(min=1, help="Most collections shown.")] = 1000,
    as_json: AsJson = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """List your face collections, by id."""

    async def fetch(client) -> list[Collection]:
        found: list[Collection] = []
        async for collection in client.iter_collections(page_size=min(limit, 1000)):
            found.append(collection)
            if len(found) >= limit:
                break
        return found

    collections = _call(server, api_key, 60.0, fetch)
    if as_json:
        print_json({"collections": [c.to_json() for c in collections]})
    else:
        out.print(collections_table(f"{len(collections)} collections", collections))
    raise typer.Exit(ExitCode.OK)


@collections_app.command("show")
def collections_show(
    collection_id: CollectionId,
    as_json: AsJson = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """Show a collection: its face and subject counts."""
    collection = _call(server, api_key, 30.0, lambda c: c.collection(collection_id))
    if as_json:
        print_json(collection.to_json())
    else:
        out.print(collections_table(collection.collection_id, [collection]))
    raise typer.Exit(ExitCode.OK)


@collections_app.command("delete")
def collections_delete(
    collection_id: CollectionId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """Delete a collection and every face in it, everywhere (asks first unless --yes)."""
    if not yes:
        if not sys.stdin.isatty():
            fail(ValueError("deleting a collection needs --yes when not run interactively"))
        typer.confirm(
            f"Delete collection {collection_id} and every face in it?", abort=True, err=True
        )
    _call(server, api_key, 30.0, lambda c: c.delete_collection(collection_id))
    err.print(f"deleted collection {collection_id}")
    raise typer.Exit(ExitCode.OK)


@faces_app.command("enroll")
def faces_enroll(
    collection_id: CollectionId,
    images: Annotated[
        list[Path],
        typer.Argument(
            help="Photos of the subject (JPEG, PNG, WebP, BMP).",
            metavar="IMAGE",
            exists=True,
            dir_okay=False,
            readable=True,
            show_default=False,
        ),
    ],
    subject: Annotated[str, typer.Option(help="Whose face it is.", show_default=False)],
    external_id: Annotated[
        str | None, typer.Option(help="Your own id for the face(s).", show_default=False)
    ] = None,
    max_faces: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=100,
            help="Enroll up to N faces per image (default: the largest only).",
            show_default=False,
        ),
    ] = None,
    upsample: Annotated[
        int | None,
        typer.Option(
            min=0, max=3, help="Upsample N times to find smaller faces.", show_default=False
        ),
    ] = None,
    as_json: AsJson = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """Enroll the face in each image under a subject. An image without a usable face
    is refused with the reason (exit 2); the others are still enrolled."""

    async def enroll_all(client) -> list[tuple[Path, Any]]:
        done = []
        for path in images:
            try:
                enrolled = await client.enroll(
                    collection_id, path, subject, external_id=external_id,
                    max_faces=max_faces, upsample=upsample,
                )  # fmt: skip
                done.append((path, enrolled))
            except errors.PerceptError as error:
                if isinstance(error, errors.Unavailable | errors.NotFound):
                    raise  # nothing else will work either
                done.append((path, error))
        return done

    results = _call(server, api_key, 120.0, enroll_all)
    failed = [(p, e) for p, e in results if isinstance(e, BaseException)]
    enrolled = [(p, r) for p, r in results if not isinstance(r, BaseException)]
    if as_json:
        print_json(
            [
                {"input": str(p), **r.to_json()}
                if not isinstance(r, BaseException)
                else {"input": str(p), "error": {"code": r.code, "message": str(r.message)}}
                for p, r in results
            ]
        )
    else:
        faces = [f for _, r in enrolled for f in r.faces]
        out.print(faces_table(f"{len(faces)} faces enrolled in {collection_id}", faces))
    for path, error in failed:
        err.print(f"[red]{path}:[/red] {Text(str(error)).plain}")
    if failed:
        raise typer.Exit(max(exit_code_for(e) for _, e in failed))
    raise typer.Exit(ExitCode.OK)


@faces_app.command("list")
def faces_list(
    collection_id: CollectionId,
    subject: Annotated[
        str | None, typer.Option(help="Only this subject's faces.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most faces shown.")] = 1000,
    as_json: AsJson = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """List a collection's enrolled faces."""

    async def fetch(client) -> list[EnrolledFace]:
        found: list[EnrolledFace] = []
        async for face in client.iter_faces(
            collection_id, subject=subject, page_size=min(limit, 1000)
        ):
            found.append(face)
            if len(found) >= limit:
                break
        return found

    faces = _call(server, api_key, 60.0, fetch)
    if as_json:
        print_json({"faces": [f.to_json() for f in faces]})
    else:
        out.print(faces_table(f"{collection_id}: {len(faces)} faces", faces))
    raise typer.Exit(ExitCode.OK)


@faces_app.command("delete")
def faces_delete(
    collection_id: CollectionId,
    face_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Ids of the faces to delete.", metavar="FACE_ID", show_default=False),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(help="Delete every face of this subject instead.", show_default=False),
    ] = None,
    as_json: AsJson = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """Delete faces by id, or every face of a subject (--subject), everywhere."""
    if bool(face_ids) == bool(subject):
        fail(ValueError("give face ids, or --subject (not both)"))

    async def delete(client) -> dict[str, Any]:
        if subject:
            return {"subject": subject, "deleted_faces": await client.delete_subject(
                collection_id, subject)}  # fmt: skip
        deleted, missing = [], []
        for face_id in face_ids or ():
            try:
                await client.delete_face(collection_id, face_id)
                deleted.append(face_id)
            except errors.NotFound as error:
                if "collection" in error.message and "does not exist" in error.message:
                    raise
                missing.append(face_id)
        return {"deleted_face_ids": deleted, "not_found": missing}

    outcome = _call(server, api_key, 60.0, delete)
    if as_json:
        print_json(outcome)
    elif subject:
        out.print(f"deleted {outcome['deleted_faces']} faces of {subject}")
    else:
        out.print(f"deleted {len(outcome['deleted_face_ids'])} faces")
    for face_id in outcome.get("not_found", ()):
        err.print(f"[red]{face_id}:[/red] no such face in {collection_id}")
    raise typer.Exit(ExitCode.USAGE if outcome.get("not_found") else ExitCode.OK)


# --- task --------------------------------------------------------------------------------------

TaskId = Annotated[
    str, typer.Argument(help="The task's id, or its first digits (4 or more).", show_default=False)
]
TASK_ID_LENGTH = 32


async def _task_id(client, given: str) -> str:
    """The full id of the one task whose id starts with `given` (the id itself when whole)."""
    if len(given) >= TASK_ID_LENGTH:
        return given
    if len(given) < 4 or any(c not in "0123456789abcdefABCDEF" for c in given):
        raise ValueError(f"{given!r} is not a task id: give the id, or its first 4+ hex digits")
    page = await client.tasks(id_prefix=given.lower(), limit=2)
    if not page.tasks:
        raise errors.NotFound(f"no task whose id starts with {given}", code="not_found")
    if len(page.tasks) > 1:
        raise ValueError(f"several tasks have ids starting with {given}: give more digits")
    return page.tasks[0].task_id


@task_app.command("get")
def task_get(
    task_id: TaskId,
    as_json: AsJson = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """Show a task: its status, progress and result."""

    async def run() -> Task:
        async with _client(server, api_key, 30.0) as client:
            return await client.task(await _task_id(client, task_id))

    task = _run(run())
    if as_json:
        print_json(task.to_json())
    else:
        out.print(task_summary(task))
        if task.result is not None:
            show_task(task)
    raise typer.Exit(ExitCode.OK)


@task_app.command("watch")
def task_watch(
    task_id: TaskId,
    as_json: AsJson = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    timeout: Timeout = 3600.0,
) -> None:
    """Follow a task until it ends, with a progress bar; exit 1 unless it succeeds."""

    async def run() -> Task:
        async with _client(server, api_key, timeout) as client:
            task = await client.task(await _task_id(client, task_id))
            with progress_bar() as progress:
                bar = progress.add_task(task.task_id[:12], total=None)
                return await _follow(client, task, progress, bar, True)

    task = _run(run())
    if as_json:
        print_json(task.to_json())
    else:
        out.print(task_summary(task))
        if task.result is not None:
            show_task(task)
    raise typer.Exit(ExitCode.OK if task.succeeded else ExitCode.FAILED)


@task_app.command("cancel")
def task_cancel(
    task_id: TaskId,
    as_json: AsJson = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """Cancel a queued or running task (exit 1 when it had already ended)."""

    async def run() -> Task:
        async with _client(server, api_key, 30.0) as client:
            return await client.cancel(await _task_id(client, task_id))

    task = _run(run())
    if as_json:
        print_json(task.to_json())
    else:
        out.print(task_summary(task))
    raise typer.Exit(ExitCode.OK)


class StatusChoice(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class KindChoice(enum.StrEnum):
    face = "face"
    object = "object"


@task_app.command("list")
def task_list(
    status: Annotated[
        StatusChoice | None, typer.Option(help="Only tasks in this status.", show_default=False)
    ] = None,
    kind: Annotated[
        KindChoice | None, typer.Option(help="Only tasks of this kind.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
    as_json: AsJson = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """List tasks, newest first."""

    async def run():
        async with _client(server, api_key, 30.0) as client:
            return await client.tasks(
                status=status.value if status else None,
                kind=kind.value if kind else None,
                limit=limit,
            )

    page = _run(run())
    if as_json:
        print_json({"tasks": [t.to_json() for t in page.tasks], "next_cursor": page.next_cursor})
        raise typer.Exit(ExitCode.OK)
    count = len(page.tasks)
    table = Table(title=f"{count} task{'' if count == 1 else 's'}", title_justify="left")
    table.add_column("task", no_wrap=True, min_width=TASK_ID_LENGTH)  # whole, to copy
    for name in ("kind", "status", "progress", "created", "finished"):
        table.add_column(name)
    for t in page.tasks:
        table.add_row(
            t.task_id,
            f"{t.kind.route} {t.media}",
            t.status.value,
            f"{t.progress.done}/{t.progress.total or '?'}" if t.media == "video" else "",
            t.created_at.strftime("%Y-%m-%d %H:%M:%S") if t.created_at else "",
            t.finished_at.strftime("%H:%M:%S") if t.finished_at else "",
        )
    out.print(table)
    raise typer.Exit(ExitCode.OK)


# --- health ------------------------------------------------------------------------------------


@app.command("health")
def health(
    as_json: AsJson = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer.")] = 5.0,
) -> None:
    """Is the gateway up and ready? Exit 0 ready, 1 up but not ready, 3 unreachable."""

    async def run() -> tuple[str, Health]:
        async with _client(server, api_key, timeout) as client:
            return client.url, await client.health(timeout=timeout)

    server, result = _run(run())  # the URL found when none was given
    if as_json:
        print_json(
            {
                "server": server,
                "alive": result.alive,
                "ready": result.ready,
                "checks": dict(result.checks),
            }
        )
    else:
        table = Table(
            title=f"{server}: {'ready' if result.ready else 'NOT ready'}", title_justify="left"
        )
        table.add_column("check")
        table.add_column("ok")
        for name, ok in result.checks.items():
            table.add_row(name, Text("yes", style="green") if ok else Text("no", style="red"))
        out.print(table)
    raise typer.Exit(ExitCode.OK if result.ready else ExitCode.FAILED)


def main() -> None:
    app()


# `percept webhooks ...`, `percept events` and `percept sources ...` register themselves on `app`.
from percept import cli_sources  # noqa: E402, F401, I001
from percept import cli_webhooks  # noqa: E402, F401
