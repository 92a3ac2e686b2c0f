"""`percept`: the SDK's command line (Typer for the commands, Rich for tables and progress).

    percept detect face photo.jpg --landmarks
    percept detect object clip.mp4 --classes circle,star --json
    percept collections create staff --description "people allowed in"
    percept faces enroll staff ann.jpg --subject ann
    percept identify door-camera.mp4 --collection staff
    percept task list --status running
    percept health

A task kind's options (their names, types, ranges and help) are its proto
fields' rules, read by percept.rules as the gateway reads them
(percept.cli_options). Exit codes: see percept.cli_common.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
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

from percept import FaceOptions, ObjectOptions, errors
from percept.cli_common import (
    USAGE_ERRORS,
    ExitCode,
    Gateway,
    Resource,
    add_gateway_command,
    app,
    err,
    exit_code_for,
    fail,
    files_argument,
    gateway_command,
    out,
    param,
    print_json,
)
from percept.cli_options import given as given_options
from percept.cli_options import kind_rules, parameters, video_only
from percept.inputs import guess_media
from percept.rules import SHORT_NAMES
from percept.types import (
    Face,
    FrameResult,
    Health,
    ImageResult,
    Kind,
    Media,
    ProgressEvent,
    StatusEvent,
    Task,
    TaskStatus,
    VideoResult,
)

__all__ = ["USAGE_ERRORS", "ExitCode", "app", "exit_code_for", "fail", "main"]

detect_app = typer.Typer(help="Detect faces or objects in images and videos.", no_args_is_help=True)
task_app = typer.Typer(help="Show, follow, cancel and list tasks.", no_args_is_help=True)
app.add_typer(detect_app, name="detect")
app.add_typer(task_app, name="task")

Timeout = Annotated[
    float, typer.Option("--timeout", help="Seconds the whole command may wait for the work.")
]
Inputs = files_argument("Image (JPEG, PNG, WebP, BMP) or video files.", "IMAGE_OR_VIDEO")
WebhookOpt = Annotated[
    str | None,
    typer.Option(
        "--webhook",
        help="A webhook subscription id (sub_...): each task's end event goes to it.",
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
CollectionOption = Annotated[
    str,
    typer.Option("--collection", "-c", help="The face collection to search.", show_default=False),
]


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
    client,
    kind: Kind,
    paths: Sequence[Path],
    media: dict[Path, Media],  # each path's, guessed by the command
    options: FaceOptions | ObjectOptions,
    image_options: FaceOptions | ObjectOptions,
    concurrency: int,
    extra: dict[str, Any] | None = None,
) -> list[Outcome]:
    images = [p for p in paths if media[p] == "image"]
    limit = asyncio.Semaphore(concurrency)
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


def detect_command(group: typer.Typer, name: str, kind: Kind, options_class, help: str,
                   leading: Sequence[inspect.Parameter] = ()) -> None:  # fmt: skip
    """Register the command that runs `kind` on images and videos: its options
    are the kind's rules (those the SDK's options class takes, and the
    identification's own), before the ones every detect command has."""
    rules = kind_rules(kind.value)
    fields = {f.name for f in dataclasses.fields(options_class)}
    names = [n for n in rules if n in fields or n in IDENTIFY_OPTIONS]
    videos_only = {n: None for n in video_only(kind.value) if n in fields}

    def command(inputs, webhook, as_json, draw, gateway, timeout, concurrency, **chosen):
        media = {p: guess_media(p) for p in inputs}  # unreadable files fail here, unsent
        values = given_options(chosen)
        extra = {n: values.pop(n) for n in list(values) if n not in fields}
        if webhook:
            extra["webhook"] = webhook
        options = options_class(**values)
        image_options = dataclasses.replace(options, **videos_only)
        outcomes = gateway.call(
            lambda client: _detect(
                client, kind, inputs, media, options, image_options, concurrency, extra
            ),
            timeout,
        )
        _report(outcomes, as_json, draw)

    command.__name__, command.__doc__ = f"{name}_command", help
    add_gateway_command(group, name, command, [
        param("inputs", Inputs), *leading, *parameters(rules, names),
        param("webhook", WebhookOpt, None), param("as_json", bool), param("draw", Draw, None),
        param("gateway", Gateway), param("timeout", Timeout, 3600.0),
        param("concurrency", Concurrency, 4),
    ])  # fmt: skip


# The identification's own options (sent beside the face options).
IDENTIFY_OPTIONS = ("top_k", "threshold")
_COLLECTION = param("collection_id", CollectionOption)
detect_command(detect_app, "face", Kind.FACE, FaceOptions, "Find faces in images and videos.")
detect_command(detect_app, "object", Kind.OBJECT, ObjectOptions,
               "Find objects in images and videos.")  # fmt: skip
detect_command(app, "identify", Kind.IDENTIFY, FaceOptions,
               'Name every face in images and videos from a face collection, or "unknown".',
               leading=[_COLLECTION])  # fmt: skip

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


def _show_whole(task: Task, **_: Any) -> None:
    out.print(task_summary(task))
    if task.result is not None:
        show_task(task)


task_by_id = Resource(task_app, "task_id", TaskId, resolve=_task_id)
task_by_id.command(
    "get", "task", "Show a task: its status, progress and result.", shows=_show_whole
)


@gateway_command(task_app, "watch")
def task_watch(
    *, task_id: TaskId, as_json: bool, gateway: Gateway, timeout: Timeout = 3600.0
) -> None:
    """Follow a task until it ends, with a progress bar; exit 1 unless it succeeds."""

    async def run(client) -> Task:
        task = await client.task(await _task_id(client, task_id))
        with progress_bar() as progress:
            bar = progress.add_task(task.task_id[:12], total=None)
            return await _follow(client, task, progress, bar, True)

    task = gateway.call(run, timeout)
    if as_json:
        print_json(task.to_json())
    else:
        _show_whole(task)
    raise typer.Exit(ExitCode.OK if task.succeeded else ExitCode.FAILED)


task_by_id.command(
    "cancel", "cancel", "Cancel a queued or running task (exit 1 when it had already ended).",
    shows=lambda task, **_: out.print(task_summary(task)),
)  # fmt: skip


# The kinds by the short names the SDK takes (face, object, identify).
KindChoice = enum.StrEnum("KindChoice", {name: name for name in SHORT_NAMES})


@gateway_command(task_app, "list")
def task_list(
    *,
    status: Annotated[
        TaskStatus | None, typer.Option(help="Only tasks in this status.", show_default=False)
    ] = None,
    kind: Annotated[
        KindChoice | None, typer.Option(help="Only tasks of this kind.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
    as_json: bool,
    gateway: Gateway,
) -> None:
    """List tasks, newest first."""
    page = gateway.call(
        lambda client: client.tasks(
            status=status.value if status else None,
            kind=kind.value if kind else None,
            limit=limit,
        )
    )
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


@gateway_command(app, "health")
def health(
    *,
    as_json: bool,
    gateway: Gateway,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer.")] = 5.0,
) -> None:
    """Is the gateway up and ready? Exit 0 ready, 1 up but not ready, 3 unreachable."""

    async def run(client) -> tuple[str, Health]:
        return client.url, await client.health(timeout=timeout)

    server, result = gateway.call(run, timeout)  # the URL found when none was given
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


# The other command groups register themselves on `app`.
from percept import cli_collections, cli_sources, cli_webhooks  # noqa: E402, F401, I001
