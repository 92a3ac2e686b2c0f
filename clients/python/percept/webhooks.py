"""Events and webhook subscriptions, for `percept.Client` and `percept.AsyncClient`.

    sub = client.create_webhook("https://example.com/hooks", ["task.succeeded"])
    sub.secret                      # whsec_...: shown now and at rotation only
    for event in client.follow_events(types=["zone.entered"]):
        print(event.type, event.data)

Receivers verify deliveries with the `standardwebhooks` package:
`Webhook(secret).verify(body, headers)`.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from percept.errors import from_http

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

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Subscription:
        return cls(
            body["id"], body["tenant"], body["url"], tuple(body["types"]),
            tuple(body.get("kinds") or ()), tuple(body.get("source_ids") or ()),
            body.get("description") or "", bool(body.get("enabled", True)),
            float(body.get("created_at") or 0), body.get("secret"),
            body.get("previous_secret_valid_until"),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        body = {"id": self.id, "tenant": self.tenant, "url": self.url, "types": list(self.types),
                "kinds": list(self.kinds), "source_ids": list(self.source_ids),
                "description": self.description, "enabled": self.enabled,
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


@dataclass(frozen=True)
class _Req:
    """One request and how to read its answer (the clients' `_send` runs it)."""

    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    params: Mapping[str, str] | None = None
    json: Any = None
    data: Any = None
    files: Any = None
    answered_only: bool = False


def _body(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text


def _sub_path(sub_id: str, *rest: str) -> str:
    parts = [urllib.parse.quote(str(p), safe="") for p in (sub_id, *rest)]
    return "/api/webhooks/" + "/".join(parts)


def _sub(r: httpx.Response) -> Subscription:
    return Subscription.from_json(r.json())


def _create(url, types, kinds, source_ids, description) -> _Req:
    body = {"url": url, "types": list(types), "kinds": list(kinds),
            "source_ids": list(source_ids), "description": description}  # fmt: skip
    return _Req("POST", "/api/webhooks", _sub, json=body, answered_only=True)


def _list() -> _Req:
    return _Req("GET", "/api/webhooks", lambda r: [Subscription.from_json(s) for s in r.json()])


def _update(sub_id: str, changes: Mapping[str, Any]) -> _Req:
    allowed = {"url", "types", "kinds", "source_ids", "description", "enabled"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot change {', '.join(sorted(unknown))}; only {sorted(allowed)}")
    body = {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()}
    return _Req("PATCH", _sub_path(sub_id), _sub, json=body)


def _log(sub_id: str, limit: int, cursor: str | None) -> _Req:
    def parse(r: httpx.Response) -> DeliveryLog:
        b = r.json()
        attempts = tuple(DeliveryAttempt.from_json(a) for a in b["attempts"])
        return DeliveryLog(attempts, b.get("next_cursor"), tuple(b.get("failed") or ()))

    params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
    return _Req("GET", _sub_path(sub_id, "deliveries"), parse, params=params)


def _events_params(types, source_id, task_id) -> dict[str, str]:
    params: dict[str, str] = {}
    if types:
        params["type"] = ",".join([types] if isinstance(types, str) else types)
    if source_id:
        params["source_id"] = source_id
    if task_id:
        params["task_id"] = task_id
    return params


def _events(types, source_id, task_id, since, limit, cursor) -> _Req:
    def parse(r: httpx.Response) -> EventPage:
        b = r.json()
        return EventPage(tuple(Event.from_json(e) for e in b["events"]), b.get("next_cursor"))

    params = {**_events_params(types, source_id, task_id), "limit": str(limit)}
    if since is not None:
        params["since"] = repr(float(since))
    if cursor:
        params["cursor"] = cursor
    return _Req("GET", "/api/events", parse, params=params)


def _sse_events(lines: Iterable[str]) -> Iterator[tuple[str, dict]]:
    """(id, envelope) for each SSE event in a stream of lines."""
    import json

    current: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in current:
                yield current.get("id", ""), json.loads(current["data"])
            current = {}
        elif not line.startswith(":") and ":" in line:
            name, _, value = line.partition(":")
            current[name] = value[1:] if value.startswith(" ") else value


Types = str | Sequence[str] | None


class WebhookMethods:
    """The event and webhook methods of `percept.Client`."""

    def create_webhook(
        self, url: str, types: Sequence[str], *, kinds: Sequence[str] = (),
        source_ids: Sequence[str] = (), description: str = "", timeout: float | None = None,
    ) -> Subscription:  # fmt: skip
        """Subscribe `url` to event types; the answer's `secret` is shown this once."""
        return self._send(_create(url, types, kinds, source_ids, description), timeout)

    def webhooks(self, *, timeout: float | None = None) -> list[Subscription]:
        """Your tenant's subscriptions (an admin's: every tenant's)."""
        return self._send(_list(), timeout)

    def webhook(self, sub_id: str, *, timeout: float | None = None) -> Subscription:
        return self._send(_Req("GET", _sub_path(sub_id), _sub), timeout)

    def update_webhook(self, sub_id: str, *, timeout: float | None = None, **changes: Any):
        """Change url, types, kinds, source_ids, description or enabled."""
        return self._send(_update(sub_id, changes), timeout)

    def delete_webhook(self, sub_id: str, *, timeout: float | None = None) -> None:
        self._send(_Req("DELETE", _sub_path(sub_id), lambda r: None), timeout)

    def rotate_webhook_secret(self, sub_id: str, *, timeout: float | None = None) -> Subscription:
        """A new secret (returned); the old one keeps signing for the server's overlap."""
        return self._send(_Req("POST", _sub_path(sub_id, "rotate"), _sub), timeout)

    def webhook_deliveries(
        self, sub_id: str, *, limit: int = 50, cursor: str | None = None,
        timeout: float | None = None,
    ) -> DeliveryLog:  # fmt: skip
        """The delivery log, newest attempt first."""
        return self._send(_log(sub_id, limit, cursor), timeout)

    def redeliver(self, sub_id: str, event_id: str, *, timeout: float | None = None) -> None:
        """Send a delivery again (one that failed for good, typically)."""
        path = _sub_path(sub_id, "deliveries", event_id, "retry")
        self._send(_Req("POST", path, lambda r: None), timeout)

    def send_test_webhook(self, sub_id: str, *, timeout: float | None = None) -> str:
        """Queue a `webhook.test` delivery to this subscription; returns its event id."""
        path = _sub_path(sub_id, "test")
        return self._send(_Req("POST", path, lambda r: r.json()["event_id"]), timeout)

    def list_events(
        self, *, types: Types = None, source_id: str | None = None, task_id: str | None = None,
        since: float | None = None, limit: int = 100, cursor: str | None = None,
        timeout: float | None = None,
    ) -> EventPage:  # fmt: skip
        """One page of the event log, newest first."""
        return self._send(_events(types, source_id, task_id, since, limit, cursor), timeout)

    def follow_events(
        self, *, types: Types = None, source_id: str | None = None, task_id: str | None = None,
        after: str | None = None,
    ) -> Iterator[Event]:  # fmt: skip
        """New events as they happen (after `after`, a seq, when given), for ever;
        a dropped stream is reopened where it stopped."""
        last = after
        params = _events_params(types, source_id, task_id)
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            try:
                with self._http.stream("GET", "/api/events/stream", params=params,
                                       headers=headers, timeout=httpx.Timeout(30, read=60)) as r:  # fmt: skip
                    if r.status_code >= 400:
                        r.read()
                        raise from_http(r.status_code, _body(r), r.headers)
                    for position, body in _sse_events(r.iter_lines()):
                        last = position or last
                        yield Event.from_json(body)
            except httpx.TransportError:
                time.sleep(1)


class AsyncWebhookMethods:
    """The event and webhook methods of `percept.AsyncClient`."""

    async def create_webhook(
        self, url: str, types: Sequence[str], *, kinds: Sequence[str] = (),
        source_ids: Sequence[str] = (), description: str = "", timeout: float | None = None,
    ) -> Subscription:  # fmt: skip
        return await self._send(_create(url, types, kinds, source_ids, description), timeout)

    async def webhooks(self, *, timeout: float | None = None) -> list[Subscription]:
        return await self._send(_list(), timeout)

    async def webhook(self, sub_id: str, *, timeout: float | None = None) -> Subscription:
        return await self._send(_Req("GET", _sub_path(sub_id), _sub), timeout)

    async def update_webhook(self, sub_id: str, *, timeout: float | None = None, **changes: Any):
        return await self._send(_update(sub_id, changes), timeout)

    async def delete_webhook(self, sub_id: str, *, timeout: float | None = None) -> None:
        await self._send(_Req("DELETE", _sub_path(sub_id), lambda r: None), timeout)

    async def rotate_webhook_secret(
        self, sub_id: str, *, timeout: float | None = None
    ) -> Subscription:
        return await self._send(_Req("POST", _sub_path(sub_id, "rotate"), _sub), timeout)

    async def webhook_deliveries(
        self, sub_id: str, *, limit: int = 50, cursor: str | None = None,
        timeout: float | None = None,
    ) -> DeliveryLog:  # fmt: skip
        return await self._send(_log(sub_id, limit, cursor), timeout)

    async def redeliver(self, sub_id: str, event_id: str, *, timeout: float | None = None) -> None:
        path = _sub_path(sub_id, "deliveries", event_id, "retry")
        await self._send(_Req("POST", path, lambda r: None), timeout)

    async def send_test_webhook(self, sub_id: str, *, timeout: float | None = None) -> str:
        path = _sub_path(sub_id, "test")
        return await self._send(_Req("POST", path, lambda r: r.json()["event_id"]), timeout)

    async def list_events(
        self, *, types: Types = None, source_id: str | None = None, task_id: str | None = None,
        since: float | None = None, limit: int = 100, cursor: str | None = None,
        timeout: float | None = None,
    ) -> EventPage:  # fmt: skip
        return await self._send(_events(types, source_id, task_id, since, limit, cursor), timeout)

    async def follow_events(
        self, *, types: Types = None, source_id: str | None = None, task_id: str | None = None,
        after: str | None = None,
    ) -> AsyncIterator[Event]:  # fmt: skip
        last = after
        params = _events_params(types, source_id, task_id)
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            try:
                async with self._http.stream("GET", "/api/events/stream", params=params,
                                             headers=headers,
                                             timeout=httpx.Timeout(30, read=60)) as r:  # fmt: skip
                    if r.status_code >= 400:
                        await r.aread()
                        raise from_http(r.status_code, _body(r), r.headers)
                    lines: list[str] = []
                    async for line in r.aiter_lines():
                        lines.append(line)
                        if line == "":
                            for position, body in _sse_events(lines):
                                last = position or last
                                yield Event.from_json(body)
                            lines = []
            except httpx.TransportError:
                await asyncio.sleep(1)
