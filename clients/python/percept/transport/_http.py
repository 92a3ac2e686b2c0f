"""HTTP for the REST operations: the effects they yield, and the two helpers
every one of them uses (`request`, `call`). The I/O that runs the effects is
`Client.perform` / `AsyncClient.perform` in `percept.transport.rest`."""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from percept.errors import DeadlineExceeded, InvalidInput, PerceptError, Unavailable, from_http
from percept.retry import Deadline
from percept.transport._core import retried
from percept.transport._ops import DEFAULT

CONNECT_TIMEOUT_S = 10.0
# The gateway sends an event or a keep-alive at least every 10 s: a stream
# silent for this long is dead, and is reopened where it stopped.
SSE_READ_TIMEOUT_S = 45.0


# --- the effects the REST I/O runs --------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One HTTP request; its answer is the response, or the PerceptError it means.
    One that `opens` a stream answers a handle instead (see `open_events`)."""

    method: str
    path: str
    deadline: Deadline | None  # None: a stream that is never done (follow_events)
    files: Callable[[contextlib.ExitStack], dict[str, Any]] | None = None
    ok: tuple[int, ...] = ()  # error statuses that are answers too
    options: Mapping[str, Any] = field(default_factory=dict)  # httpx's params, headers, json, data
    opens: bool = False

    def send(self, stack: contextlib.ExitStack) -> dict[str, Any]:
        """httpx's arguments for one attempt (a file is opened afresh for each)."""
        files = self.files(stack) if self.files else None
        timeout = httpx.Timeout(30, read=60)
        if self.deadline is not None:
            read = self.deadline.cap(SSE_READ_TIMEOUT_S if self.opens else None)
            timeout = httpx.Timeout(read, connect=self.deadline.cap(CONNECT_TIMEOUT_S))
        return dict(method=self.method, url=self.path, files=files, timeout=timeout,
                    **self.options)  # fmt: skip


def open_events(
    path: str, deadline: Deadline | None, headers: Mapping[str, str], params: Any = None
) -> Request:
    """A Server-Sent Events stream: its handle's `Next` is an event (httpx_sse's
    ServerSentEvent)."""
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store", **headers}
    options = {"headers": headers, "params": params}
    return Request("GET", path, deadline, options=options, opens=True)


def body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def checked(response: httpx.Response, ok: Iterable[int] = ()) -> httpx.Response:
    if response.status_code < 400 or response.status_code in ok:
        return response
    raise from_http(response.status_code, body_of(response), response.headers)


def network_error(url: str, exc: Exception, deadline: Deadline | None) -> PerceptError:
    if deadline is not None and deadline.expired:
        return DeadlineExceeded(f"no answer from {url} before the deadline ({exc})")
    return Unavailable(f"cannot reach {url}: {exc or type(exc).__name__}", code="unreachable")


def deadline_for(timeout: Any, default: float | None) -> Deadline:
    """A REST call's deadline: the client's default unless a timeout is given."""
    return Deadline(default if timeout is None or timeout is DEFAULT else timeout)


def request(c, method: str, path: str, *, timeout=None, retry=None, conflict=False,
            stores=False, **kw):  # fmt: skip
    """One request, retried as the client's policy (or `retry`) says; one that
    `stores` something not after a network error (see `_core.retried`)."""
    deadline = kw.pop("deadline", None) or deadline_for(timeout, c.timeout)
    effect = Request(method, path, deadline, kw.pop("files", None), kw.pop("ok", ()), kw)
    return (yield from retried(effect, retry or c.retry, deadline, conflict, stores))


def call(c, method: str, path: str, read: Callable[[Any], Any], timeout=None, **kw):
    """A request whose JSON answer `read` turns into the method's value."""
    response = yield from request(c, method, path, timeout=timeout, **kw)
    return read(response.json() if response.content else None)


def segment(value: str, name: str) -> str:
    """The path parameter `name` as one URL path segment. An all-dots value ('.',
    '..') cannot be one: HTTP clients drop '.' or climb a level at '..', so it
    is refused here."""
    text = str(value)
    if text and text.strip(".") == "":
        raise InvalidInput(
            f"{name.replace('_', ' ')} {text!r} is only dots: a URL path cannot carry '.', "
            "'..' or '...' as themselves",
            code="invalid_argument",
            fields=(name,),
        )
    return urllib.parse.quote(text, safe="")
