"""`percept sources ...`: live sources (cameras, streams, files) from the command line.

percept sources add rtsp://door-cam/stream --name door --fps 5 --line door:320,0:320,480
percept sources add /videos/shop.mp4 --loop --zone shelf:440,140:639,140:639,340:440,340
percept sources list
percept sources show src_0123abcd
percept sources pause src_0123abcd     (and resume)
percept sources rm src_0123abcd
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from percept import Source
from percept.cli_common import Resource, app, out, sdk_command, titled

sources_app = typer.Typer(
    help="Register cameras and streams the stack watches itself; list, pause, remove them.",
    no_args_is_help=True,
)
app.add_typer(sources_app, name="sources")

SourceId = Annotated[str, typer.Argument(help="The source's id (src_...).", show_default=False)]


def _points(text: str, what: str) -> tuple[str, list[list[float]]]:
    """'id:x,y:x,y...' -> (id, [[x, y], ...])."""
    name, *points = text.split(":")
    try:
        parsed = [[float(v) for v in p.split(",")] for p in points]
    except ValueError:
        parsed = []
    if not name or not parsed or any(len(p) != 2 for p in parsed):
        raise typer.BadParameter(f"{what} {text!r}: write it as ID:X,Y:X,Y... (pixels)")
    return name, parsed


def _table(title: str, sources: list[Source]) -> Table:
    table = Table(title=title, title_justify="left")
    for name, justify in (
        ("id", "left"), ("name", "left"), ("state", "left"), ("fps in", "right"),
        ("fps done", "right"), ("dropped", "right"), ("reconnects", "right"),
        ("latency ms", "right"), ("url", "left"), ("reason", "left"),
    ):  # fmt: skip
        table.add_column(name, justify=justify, no_wrap=name == "id")
    for s in sources:
        st = s.status
        table.add_row(
            s.source_id, s.name, st.state, f"{st.fps_in:.1f}", f"{st.fps_processed:.1f}",
            str(st.frames_dropped), str(st.reconnects), f"{st.latency_ms:.0f}", s.url, st.reason,
        )  # fmt: skip
    return table


def _counts(source: Source) -> Table:
    table = Table(title="counts", title_justify="left")
    for name in ("zone or line", "counts"):
        table.add_column(name)
    for rule, counts in sorted(source.counts.items()):
        table.add_row(rule, ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return table


def _show(source: Source, **_: Any) -> None:
    out.print(_table(source.source_id, [source]))
    if source.counts:
        out.print(_counts(source))


@sdk_command(sources_app, "add", shows=lambda s, **_: out.print(f"added {s.source_id} ({s.url})"))
def sources_add(
    client,
    url: Annotated[
        str, typer.Argument(help="rtsp://, rtsps://, http(s):// (MJPEG, HLS) or a file.")
    ],
    name: Annotated[str, typer.Option(help="A label for people.")] = "",
    detect: Annotated[str, typer.Option(help="objects, faces or both.")] = "objects",
    fps: Annotated[float, typer.Option(help="Frames processed per second, at most.")] = 5.0,
    loop: Annotated[bool, typer.Option(help="Files: start again at the end.")] = False,
    collection: Annotated[str, typer.Option(help="Identify faces against this collection.")] = "",
    zone: Annotated[
        list[str] | None, typer.Option(help="A zone (repeat): ID:X,Y:X,Y:X,Y... in pixels.")
    ] = None,
    line: Annotated[
        list[str] | None, typer.Option(help="A counting line (repeat): ID:X,Y:X,Y in pixels.")
    ] = None,
):
    """Register a live source; the stack's source workers start on it at once."""
    fields: dict[str, Any] = {"name": name, "detect": detect, "max_fps": fps, "loop": loop}
    if collection:
        fields["collection_id"] = collection
    fields["zones"] = [{"id": i, "polygon": p} for i, p in (_points(z, "zone") for z in zone or ())]
    lines = []
    for text in line or ():
        line_id, points = _points(text, "line")
        if len(points) != 2:
            raise typer.BadParameter(f"line {text!r}: give exactly two points, ID:X,Y:X,Y")
        lines.append({"id": line_id, "start": points[0], "end": points[1]})
    fields["lines"] = lines
    return client.add_source(url, **fields)


source = Resource(sources_app, "source_id", SourceId)
source.list(
    "sources", "Your sources with their state and rates.", shows=titled(_table, "{n} sources")
)
source.command(
    "show", "source", "One source: state, rates and the counts per zone and line.", shows=_show
)
source.command("pause", "pause_source", "Stop watching a source, keeping it.", shows=_show)
source.command("resume", "resume_source", "Watch a paused source again.", shows=_show)
source.command(
    "rm", "delete_source", "Stop watching a source and forget it.",
    says=lambda _, source_id: out.print(f"removed {source_id}"),
)  # fmt: skip
