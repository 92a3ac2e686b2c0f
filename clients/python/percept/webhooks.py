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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from percept.errors import PerceptError
from percept.options import form_value
from percept.transport._core import Close, Item, Next, Sleep, stream
from percept.transport._http import open_events
from percept.transport._ops import Route
from percept.types import JsonType


@dataclass(frozen=True, slots=True)
class Event(JsonType):
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


@dataclass(frozen=True, slots=True)
class EventPage:
    events: tuple[Event, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, b: Mapping[str, Any]) -> EventPage:
        return cls(tuple(Event.from_json(e) for e in b["events"]), b.get("next_cursor"))


@dataclass(frozen=True, slots=True)
class Subscription(JsonType):
    """A webhook subscription. `secret` is set only when just created or rotated."""

    skip_none = True

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
_SUB = "/api/webhooks/{sub_id}"
ROUTES = [
    Route("create_webhook", "POST", "/api/webhooks", Subscription.from_json,
          "Subscribe `url` to event types; the answer's `secret` is shown this once. "
          "`tasks='named'`: task events only of the tasks that name it (submit's `webhook=`).",
          args=("url", "types"), stores=True,
          options={"kinds": (), "source_ids": (), "description": "", "tasks": "all"}),
    Route("webhooks", "GET", "/api/webhooks", lambda b: [Subscription.from_json(s) for s in b],
          "Your tenant's subscriptions (an admin's: every tenant's)."),
    Route("webhook", "GET", _SUB, Subscription.from_json),
    Route("delete_webhook", "DELETE", _SUB),
    Route("rotate_webhook_secret", "POST", _SUB + "/rotate", Subscription.from_json,
          "A new secret (returned); the old one keeps signing for the server's overlap."),
    Route("webhook_deliveries", "GET", _SUB + "/deliveries", DeliveryLog.from_json,
          "The delivery log, newest attempt first.", options={"limit": 50, "cursor": None}),
    Route("redeliver", "POST", _SUB + "/deliveries/{event_id}/retry",
          doc="Send a delivery again (one that failed for good, typically)."),
    Route("send_test_webhook", "POST", _SUB + "/test", lambda b: b["event_id"],
          "Queue a `webhook.test` delivery to this subscription; returns its event id."),
    Route("list_events", "GET", "/api/events", EventPage.from_json,
          "One page of the event log, newest first.", rename={"types": "type"},
          options={"types": None, "source_id": None, "task_id": None, "since": None,
                   "limit": 100, "cursor": None}),
]  # fmt: skip
_CHANGES = {"url", "types", "kinds", "source_ids", "tasks", "description", "enabled"}
_UPDATE = Route("update_webhook", "PATCH", _SUB, Subscription.from_json, fields=True)


def update_webhook(c, sub_id: str, *, timeout: float | None = None, **changes: Any):
    """Change url, types, kinds, source_ids, tasks, description or enabled."""
    unknown = set(changes) - _CHANGES
    if unknown:
        raise ValueError(f"cannot change {', '.join(sorted(unknown))}; only {sorted(_CHANGES)}")
    body = {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()}
    return (yield from c._route(_UPDATE, {"sub_id": sub_id, **body}, timeout))


@stream
def follow_events(
    c, *, types: Types = None, source_id: str | None = None, task_id: str | None = None,
    after: str | None = None,
) -> Iterator[Event]:  # fmt: skip
    """New events as they happen (after `after`, a seq, when given), for ever;
    a dropped stream is reopened where it stopped."""
    last = after
    params = {"type": form_value(types) if types else None, "source_id": source_id,
              "task_id": task_id}  # fmt: skip
    params = {k: v for k, v in params.items() if v}
    while True:
        headers = {"Last-Event-ID": last} if last else {}
        handle = None
        try:
            handle = yield open_events("/api/events/stream", None, headers, params)
            while (sse := (yield Next(handle))) is not None:
                if sse.data:
                    last = sse.id or last
                    yield Item(Event.from_json(json.loads(sse.data)))
        except PerceptError as error:
            if error.status is not None:  # the server's answer, not a dropped connection
                raise
        if handle is not None:
            yield Close(handle)
        yield Sleep(1)


OPERATIONS = [update_webhook, follow_events]
