"""Events and webhook subscriptions, for `percept.Client` and `percept.AsyncClient`
(their operations, written once: see `percept.transport._core`).

    sub = client.create_webhook("https://example.com/hooks", ["task.succeeded"])
    sub.secret                      # whsec_...: shown now and at rotation only
    for event in client.follow_events(types=["zone.entered"]):
        print(event.type, event.data)

Receivers verify deliveries with the `standardwebhooks` package:
`Webhook(secret).verify(body, headers)`.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from percept.errors import PerceptError
from percept.transport._core import Close, Item, Sleep, stream
from percept.transport._http import NextEvent, OpenEvents, answered_only, call, request

EVENT_TYPES = (
    "task.succeeded",
    "task.failed",
    "task.cancelled",
    "source.state_changed",
    "track.started",
    "track.ended",
    "zone.entered",
    "zone.left",
    "line.crossed",
    "face.identified",
)


@dataclass(frozen=True, slots=True)
class Event:
    """One event: the same envelope the log, webhooks and MQTT carry."""

    id: str
    type: str
    tenant: str
    time: float
    seq: str
    data: Mapping[str, Any]

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Event:
        return cls(body["id"], body["type"], body.get("tenant", ""), float(body["time"]),
                   str(body.get("seq", "")), body.get("data") or {})  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "tenant": self.tenant, "time": self.time,
                "seq": self.seq, "data": dict(self.data)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class EventPage:
    events: tuple[Event, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, b: Mapping[str, Any]) -> EventPage:
        return cls(tuple(Event.from_json(e) for e in b["events"]), b.get("next_cursor"))


@dataclass(frozen=True, slots=True)
class Subscription:
    """A webhook subscription. `secret` is set only when just created or rotated."""

    id: str
    tenant: str
    url: str
    types: tuple[str, ...]
    kinds: tuple[str, ...] = ()
    source_ids: tuple[str, ...] = ()
    description: str = ""
    enabled: bool = True
    created_at: float = 0.0
    secret: str | None = None
    previous_secret_valid_until: float | None = None
    tasks: str = "all"  # "named": only the task events of tasks that name it (submit webhook=)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Subscription:
        return cls(
            body["id"], body["tenant"], body["url"], tuple(body["types"]),
            tuple(body.get("kinds") or ()), tuple(body.get("source_ids") or ()),
            body.get("description") or "", bool(body.get("enabled", True)),
            float(body.get("created_at") or 0), body.get("secret"),
            body.get("previous_secret_valid_until"), body.get("tasks") or "all",
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        body = {"id": self.id, "tenant": self.tenant, "url": self.url, "types": list(self.types),
                "kinds": list(self.kinds), "source_ids": list(self.source_ids),
                "tasks": self.tasks, "description": self.description, "enabled": self.enabled,
                "created_at": self.created_at}  # fmt: skip
        if self.secret:
            body["secret"] = self.secret
        if self.previous_secret_valid_until:
            body["previous_secret_valid_until"] = self.previous_secret_valid_until
        return body


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One attempt to deliver an event: its answer, and when the next try is due."""

    time: float
    event_id: str
    event_type: str
    attempt: int
    outcome: str  # succeeded | retry | failed
    status_code: int | None
    latency_ms: float | None
    error: str | None
    next_try: float | None

    @classmethod
    def from_json(cls, b: Mapping[str, Any]) -> DeliveryAttempt:
        return cls(float(b["time"]), b["event_id"], b["event_type"], int(b["attempt"]),
                   b["outcome"], b.get("status_code"), b.get("latency_ms"), b.get("error"),
                   b.get("next_try"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeliveryLog:
    attempts: tuple[DeliveryAttempt, ...]
    next_cursor: str | None
    failed: tuple[str, ...] = field(default=())  # event ids that ran out of retries

    @classmethod
    def from_json(cls, b: Mapping[str, Any]) -> DeliveryLog:
        attempts = tuple(DeliveryAttempt.from_json(a) for a in b["attempts"])
        return cls(attempts, b.get("next_cursor"), tuple(b.get("failed") or ()))


Types = str | Sequence[str] | None


def _sub_path(sub_id: str, *rest: str) -> str:
    parts = [urllib.parse.quote(str(p), safe="") for p in (sub_id, *rest)]
    return "/api/webhooks/" + "/".join(parts)


def create_webhook(
    c, url: str, types: Sequence[str], *, kinds: Sequence[str] = (),
    source_ids: Sequence[str] = (), description: str = "", tasks: str = "all",
    timeout: float | None = None,
) -> Subscription:  # fmt: skip
    """Subscribe `url` to event types; the answer's `secret` is shown this once.
    `tasks="named"`: task events only of the tasks that name it (submit's `webhook=`)."""
    body = {"url": url, "types": list(types), "kinds": list(kinds),
            "source_ids": list(source_ids), "tasks": tasks, "description": description}  # fmt: skip
    return (yield from call(c, "POST", "/api/webhooks", Subscription.from_json, timeout,
                            json=body, retry=answered_only(c.retry)))  # fmt: skip


def webhooks(c, *, timeout: float | None = None) -> list[Subscription]:
    """Your tenant's subscriptions (an admin's: every tenant's)."""
    read = lambda b: [Subscription.from_json(s) for s in b]  # noqa: E731
    return (yield from call(c, "GET", "/api/webhooks", read, timeout))


def webhook(c, sub_id: str, *, timeout: float | None = None) -> Subscription:
    return (yield from call(c, "GET", _sub_path(sub_id), Subscription.from_json, timeout))


def update_webhook(c, sub_id: str, *, timeout: float | None = None, **changes: Any):
    """Change url, types, kinds, source_ids, tasks, description or enabled."""
    allowed = {"url", "types", "kinds", "source_ids", "tasks", "description", "enabled"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot change {', '.join(sorted(unknown))}; only {sorted(allowed)}")
    body = {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()}
    path = _sub_path(sub_id)
    return (yield from call(c, "PATCH", path, Subscription.from_json, timeout, json=body))


def delete_webhook(c, sub_id: str, *, timeout: float | None = None) -> None:
    yield from request(c, "DELETE", _sub_path(sub_id), timeout=timeout)


def rotate_webhook_secret(c, sub_id: str, *, timeout: float | None = None) -> Subscription:
    """A new secret (returned); the old one keeps signing for the server's overlap."""
    path = _sub_path(sub_id, "rotate")
    return (yield from call(c, "POST", path, Subscription.from_json, timeout))


def webhook_deliveries(
    c, sub_id: str, *, limit: int = 50, cursor: str | None = None, timeout: float | None = None
) -> DeliveryLog:
    """The delivery log, newest attempt first."""
    params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
    path = _sub_path(sub_id, "deliveries")
    return (yield from call(c, "GET", path, DeliveryLog.from_json, timeout, params=params))


def redeliver(c, sub_id: str, event_id: str, *, timeout: float | None = None) -> None:
    """Send a delivery again (one that failed for good, typically)."""
    path = _sub_path(sub_id, "deliveries", event_id, "retry")
    yield from request(c, "POST", path, timeout=timeout)


def send_test_webhook(c, sub_id: str, *, timeout: float | None = None) -> str:
    """Queue a `webhook.test` delivery to this subscription; returns its event id."""
    path = _sub_path(sub_id, "test")
    return (yield from call(c, "POST", path, lambda b: b["event_id"], timeout))


def _events_params(types: Types, source_id, task_id) -> dict[str, str]:
    params = {
        "type": ",".join([types] if isinstance(types, str) else types) if types else None,
        "source_id": source_id,
        "task_id": task_id,
    }
    return {k: v for k, v in params.items() if v}


def list_events(
    c, *, types: Types = None, source_id: str | None = None, task_id: str | None = None,
    since: float | None = None, limit: int = 100, cursor: str | None = None,
    timeout: float | None = None,
) -> EventPage:  # fmt: skip
    """One page of the event log, newest first."""
    params = {**_events_params(types, source_id, task_id), "limit": str(limit)}
    if since is not None:
        params["since"] = repr(float(since))
    if cursor:
        params["cursor"] = cursor
    return (yield from call(c, "GET", "/api/events", EventPage.from_json, timeout, params=params))


@stream
def follow_events(
    c, *, types: Types = None, source_id: str | None = None, task_id: str | None = None,
    after: str | None = None,
) -> Iterator[Event]:  # fmt: skip
    """New events as they happen (after `after`, a seq, when given), for ever;
    a dropped stream is reopened where it stopped."""
    last = after
    params = _events_params(types, source_id, task_id)
    while True:
        headers = {"Last-Event-ID": last} if last else {}
        handle = None
        try:
            handle = yield OpenEvents("/api/events/stream", None, headers, params)
            while (sse := (yield NextEvent(handle))) is not None:
                if sse.data:
                    last = sse.id or last
                    yield Item(Event.from_json(json.loads(sse.data)))
        except PerceptError as error:
            if error.status is not None:  # the server's answer, not a dropped connection
                raise
        if handle is not None:
            yield Close(handle)
        yield Sleep(1)


OPERATIONS = [
    create_webhook, webhooks, webhook, update_webhook, delete_webhook, rotate_webhook_secret,
    webhook_deliveries, redeliver, send_test_webhook, list_events, follow_events,
]  # fmt: skip
