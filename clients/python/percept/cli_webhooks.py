"""`percept webhooks ...` and `percept events`: push delivery from the command line.

percept webhooks create https://example.com/hooks --type task.succeeded --type task.failed
percept webhooks list
percept webhooks deliveries sub_0123abcd
percept webhooks redeliver sub_0123abcd evt_...
percept events --type zone.entered --follow
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from percept.cli_common import (
    ExitCode,
    Gateway,
    Resource,
    app,
    err,
    gateway_command,
    one,
    out,
    print_json,
    sdk_command,
    titled,
)
from percept.webhooks import Event, Subscription

webhooks_app = typer.Typer(
    help="Subscribe URLs to events (signed webhooks), see their deliveries, send again.",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")

# The gateway declares the event types and answers an unknown one with the whole
# list (422), so the CLI names a few instead of restating them.
_TYPES_HINT = "task.succeeded, task.failed, zone.entered, ... (a wrong one lists them all)"
SubId = Annotated[str, typer.Argument(help="The subscription's id (sub_...).", show_default=False)]
TypesOpt = Annotated[
    list[str] | None,
    typer.Option("--type", "-t", help=f"Event type (repeat): {_TYPES_HINT}."),
]


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def _subs_table(title: str, subs: list[Subscription]) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("id", "url", "types", "filters", "enabled", "created"):
        table.add_column(name, no_wrap=name == "id")
    for s in subs:
        filters = ", ".join(
            [
                *(f"kind={k}" for k in s.kinds),
                *(f"source={x}" for x in s.source_ids),
                *(["tasks=named"] if s.tasks == "named" else []),
            ]
        )
        table.add_row(s.id, s.url, ", ".join(s.types), filters, "yes" if s.enabled else "no",
                      _when(s.created_at))  # fmt: skip
    return table


def _show_secret(sub: Subscription, **_: Any) -> None:
    out.print(_subs_table(sub.id, [sub]))
    out.print(f"secret: {sub.secret}")
    err.print("keep the secret now: it is not shown again (rotate to get a new one)")


def _show_rotated(sub: Subscription, **_: Any) -> None:
    _show_secret(sub)
    if sub.previous_secret_valid_until:
        err.print(f"the previous secret also signs until {_when(sub.previous_secret_valid_until)}")


@sdk_command(webhooks_app, "create", shows=_show_secret)
def webhooks_create(
    client,
    url: Annotated[str, typer.Argument(help="https:// URL to POST events to.")],
    types: TypesOpt = None,
    kind: Annotated[list[str] | None, typer.Option(help="Task events of this kind only.")] = None,
    source: Annotated[list[str] | None, typer.Option(help="Events of this source only.")] = None,
    named: Annotated[
        bool,
        typer.Option(
            "--named-tasks", help="Task events only of tasks that name it (submit --webhook)."
        ),
    ] = False,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
):
    """Subscribe a URL to event types; prints its signing secret (once)."""
    if not types:
        raise ValueError(f"name at least one --type: {_TYPES_HINT}")
    return client.create_webhook(
        url, types, kinds=kind or (), source_ids=source or (), description=description,
        tasks="named" if named else "all",
    )  # fmt: skip


subscription = Resource(webhooks_app, "sub_id", SubId)
subscription.list(
    "webhooks", "Your subscriptions (an admin's: every tenant's).",
    shows=titled(_subs_table, "{n} subscriptions"),
)  # fmt: skip
subscription.command("show", "webhook", "One subscription.", shows=one(_subs_table, "id"))
subscription.command(
    "delete", "delete_webhook",
    "Delete a subscription and its pending deliveries (asks first unless --yes).",
    deletes="subscription {sub_id}",
)  # fmt: skip
subscription.command(
    "rotate", "rotate_webhook_secret",
    "A new signing secret; the old one keeps signing for the server's overlap.",
    shows=_show_rotated,
)  # fmt: skip


@gateway_command(webhooks_app, "deliveries")
def webhooks_deliveries(
    *,
    sub_id: SubId,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Attempts shown, newest first.")] = 50,
    as_json: bool,
    gateway: Gateway,
) -> None:
    """The delivery log: event, attempt, status code, latency, next try."""
    log = gateway.call(lambda c: c.webhook_deliveries(sub_id, limit=limit))
    if as_json:
        attempts = [dataclasses.asdict(a) for a in log.attempts]
        print_json({"attempts": attempts, "failed": list(log.failed),
                    "next_cursor": log.next_cursor})  # fmt: skip
        raise typer.Exit(ExitCode.OK)
    table = Table(title=f"{sub_id}: {len(log.attempts)} attempts", title_justify="left")
    for name in ("time", "event", "type", "attempt", "status", "latency ms", "next try", "error"):
        table.add_column(name, no_wrap=name == "event")
    for a in log.attempts:
        style = {"succeeded": "green", "failed": "red"}.get(a.outcome, "yellow")
        table.add_row(_when(a.time), a.event_id, a.event_type, str(a.attempt),
                      Text(str(a.status_code or "-"), style=style),
                      f"{a.latency_ms:.0f}" if a.latency_ms is not None else "",
                      _when(a.next_try), a.error or "")  # fmt: skip
    out.print(table)
    if log.failed:
        err.print(f"{len(log.failed)} failed for good: percept webhooks redeliver {sub_id} EVENT")
    raise typer.Exit(ExitCode.OK)


@sdk_command(
    webhooks_app,
    "redeliver",
    says=lambda _, sub_id, event_id: err.print(f"{event_id} queued again for {sub_id}"),
)
def webhooks_redeliver(
    client,
    sub_id: SubId,
    event_id: Annotated[str, typer.Argument(help="The event's id (evt_...).")],
):
    """Send a delivery again (one that failed for good, typically)."""
    return client.redeliver(sub_id, event_id)


subscription.command(
    "test", "send_test_webhook", "Send a test event (type webhook.test) to the subscription.",
    says=lambda event_id, **_: out.print(event_id),
)  # fmt: skip


def _event_line(e: Event) -> str:
    data = json.dumps(dict(e.data), separators=(",", ":"))
    return f"{_when(e.time)}  {e.type:<20} {e.id}  {data}"


@gateway_command(app, "events")
def events_command(
    *,
    types: TypesOpt = None,
    source: Annotated[str | None, typer.Option(help="Only this source's.")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task's.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=500, help="Most shown (not with --follow).")
    ] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Print new events as they come.")
    ] = False,
    as_json: bool,
    gateway: Gateway,
) -> None:
    """The event log, newest first; --follow prints new ones as they happen (Ctrl-C stops)."""
    if not follow:
        page = gateway.call(lambda c: c.list_events(
            types=types, source_id=source, task_id=task, limit=limit))  # fmt: skip
        for e in page.events:
            out.print(json.dumps(e.to_json()) if as_json else Text(_event_line(e)))
        raise typer.Exit(ExitCode.OK)

    async def run(client) -> None:
        async for e in client.follow_events(types=types, source_id=source, task_id=task):
            line = json.dumps(e.to_json()) if as_json else _event_line(e)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):
        gateway.call(run, 3600.0)
    raise typer.Exit(ExitCode.OK)
