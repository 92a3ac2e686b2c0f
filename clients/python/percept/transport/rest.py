"""REST through the gateway: `Client` (sync) and `AsyncClient` (asyncio).

The routes of the repository README: submit (multipart, an Idempotency-Key
on each), tasks, their Server-Sent Events, cancel, health, and (declared in
`_ops`, `webhooks` and below) face collections, sources, events, webhooks.
Each operation is written once, as a sans-IO generator (see `_core`); the two
classes differ only in the I/O that runs it. Built-in kinds are known from the
protos (`percept.rules`); any other kind the gateway lists in GET /api/kinds
is submitted to its route too (its result: a GenericResult). The API key
goes as `Authorization: Bearer <key>`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

import httpx
from httpx_sse import EventSource

from percept import inputs, rules, stack, webhooks
from percept.errors import Conflict, DeadlineExceeded, PerceptError
from percept.inputs import Color, ImageInput, VideoInput
from percept.options import FaceOptions, ObjectOptions, form_value
from percept.retry import NO_RETRY, RetryPolicy
from percept.transport import _ops, _wire
from percept.transport._core import (
    SKIP,
    Close,
    Closing,
    Defer,
    Item,
    Next,
    Stop,
    install,
    relay,
    resumed,
    stream,
    walk,
)
from percept.transport._http import (
    body_of,
    call,
    checked,
    deadline_for,
    network_error,
    open_events,
    request,
    segment,
)
from percept.transport._ops import DEFAULT, Route, identification, kind_options, operation
from percept.types import (
    FrameEvent,
    Health,
    Kind,
    KindInfo,
    Media,
    Source,
    StatusEvent,
    Task,
    TaskPage,
    TaskStatus,
    event_from_sse,
)

DEFAULT_URL = stack.DEFAULT_URL

TaskRef = Task | str


def _task_id(task: TaskRef) -> str:
    return task.task_id if isinstance(task, Task) else str(task)


def _in_order(tasks: list[TaskRef], ended: Iterable[Task]) -> list[Task]:
    done = {t.task_id: t for t in ended}
    return [done[_task_id(t)] for t in tasks]


# --- tasks -----------------------------------------------------------------------------------


def kinds(c, *, timeout: float | None = None) -> list[KindInfo]:
    """The task kinds this gateway serves (GET /api/kinds), with their options."""
    if c._kinds is None:
        c._kinds = yield from call(
            c, "GET", "/api/kinds", lambda b: [KindInfo.from_json(k) for k in b["kinds"]], timeout
        )
    return c._kinds


def _kind_info(c, name: str, media: Media) -> Any:
    """A kind the gateway lists (fetched once per client), on `media`."""
    for info in (yield from kinds(c)):
        if info.kind == name and info.media == media:
            return info
    served = ", ".join(dict.fromkeys(k.kind for k in c._kinds if k.media == media)) or "none"
    raise ValueError(f"unknown kind {name!r} on {media}: this gateway serves {served}")


def submit(
    c,
    kind: Kind | str,
    source: ImageInput | VideoInput,
    options: FaceOptions | ObjectOptions | None = None,
    *,
    media: Media | None = None,
    color: Color | None = None,
    idempotency_key: str | None = None,
    wait: bool = False,
    timeout: float | None = None,
    collection_id: str | None = None,
    top_k: int | None = None,
    threshold: float | None = None,
    webhook: str | None = None,
    **fields: Any,
) -> Task:
    """Upload an image or video for `kind` and return its task.

    `kind`: "face", "object", "identify", or any kind the gateway lists in
    `kinds()` (its options as keywords; its result a GenericResult). `media`
    is guessed from the input when not given. Every submit carries an
    Idempotency-Key (a new one unless given), so the retries it makes itself
    never create a second task. `wait=True` asks the gateway to answer with the
    ended task when it ends quickly (simple mode); the task is returned either
    way (check `task.ended`). Options: an options object and/or keywords (see
    FaceOptions, ObjectOptions). Kind "identify" takes `collection_id`
    (required), `top_k` and `threshold` too. `webhook` names a webhook
    subscription (its id) that the task's end event goes to.
    """
    media = media or inputs.guess_media(source)
    try:
        kind = Kind.parse(kind)
    except ValueError:
        info = yield from _kind_info(c, str(kind), media)
        path = info.path
        values = {"collection_id": collection_id, "top_k": top_k, "threshold": threshold, **fields}
        values = {k: v for k, v in values.items() if v is not None}
        _wire.check(rules.rules_from_schema(info.options), values)
    else:
        path = kind.path(media)
        identify = identification(kind, collection_id, top_k, threshold)
        values = kind_options(kind, media, options, fields, identify)
    form = {k: form_value(v) for k, v in values.items()}
    if webhook is not None:
        form["webhook"] = webhook
    upload = inputs.image_upload if media == "image" else inputs.video_upload
    key = idempotency_key or uuid.uuid4().hex
    deadline = deadline_for(timeout, c.wait_timeout if wait else c.timeout)
    try:
        response = yield from request(
            c, "POST", path, deadline=deadline, params={"wait": "true"} if wait else None,
            headers={"Idempotency-Key": key}, files=upload(source, color), data=form,
            conflict=True,
        )  # fmt: skip
    except PerceptError as error:
        if error.task_id:  # simple mode: the task ran and failed
            return (yield from task(c, error.task_id))
        raise
    body = response.json()
    if response.status_code == 200:
        return Task.from_json(body)
    status = TaskStatus(body.get("status", "queued"))
    return Task(body["task_id"], kind, media, status, status_url=body.get("status_url"))


def task(c, task: TaskRef, *, timeout: float | None = None) -> Task:
    """The task's current record (status, progress, result or error)."""
    return (yield from call(c, "GET", f"/api/task/{_task_id(task)}", Task.from_json, timeout))


_task = task  # for the operations whose parameter is named `task`


def cancel(c, task: TaskRef, *, timeout: float | None = None) -> Task:
    """Cancel a queued or running task. Cancelling a cancelled task returns it;
    one that already succeeded or failed raises Conflict."""
    deadline = deadline_for(timeout, c.timeout)
    path = f"/api/task/{_task_id(task)}"
    try:
        return (yield from call(c, "DELETE", path, Task.from_json, deadline=deadline))
    except Conflict:
        current = yield from _task(c, task, timeout=deadline.remaining())
        if current.status is TaskStatus.CANCELLED:
            return current
        raise


def tasks(
    c,
    *,
    status: TaskStatus | str | None = None,
    kind: Kind | str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    id_prefix: str | None = None,
    timeout: float | None = None,
) -> TaskPage:
    """One page of tasks, newest first (only ids starting with `id_prefix`, 4+ hex digits)."""
    params = {
        "limit": str(limit),
        "q": id_prefix,
        "status": TaskStatus(status).value if status else None,
        "kind": rules.SHORT_NAMES.get(str(kind), str(kind)) if kind else None,  # any kind
        "cursor": cursor,
    }
    params = {k: v for k, v in params.items() if v}
    return (yield from call(c, "GET", "/api/tasks", TaskPage.from_json, timeout, params=params))


@stream
def iter_tasks(
    c, *, status: TaskStatus | str | None = None, kind: Kind | str | None = None,
    page_size: int = 100,
) -> Iterator[Task]:  # fmt: skip
    """Every task, newest first, fetching pages as needed."""
    fetch = lambda cur: tasks(c, status=status, kind=kind, limit=page_size, cursor=cur)  # noqa: E731
    return (yield from walk(fetch, "tasks", "next_cursor"))


def _event(sse: Any) -> Any:
    try:
        data = json.loads(sse.data) if sse.data else {}
    except ValueError:
        return None
    return event_from_sse(sse.id, sse.event, data)


@stream
def events(c, task: TaskRef, *, after: str | None = None, timeout: float | None = None):
    """The task's events as they happen (everything so far first), ending with the
    ended status, which carries the whole task. A dropped stream is reopened
    where it stopped (Last-Event-ID)."""
    task_id = _task_id(task)
    deadline = deadline_for(timeout, c.wait_timeout)
    last = [after]

    def read(handle):
        while (sse := (yield Next(handle))) is not None:
            last[0] = sse.id or last[0]
            event = _event(sse)
            if event is not None:
                yield Item(event)
                if isinstance(event, StatusEvent) and event.status.ended:
                    return True
            if deadline.expired:
                raise DeadlineExceeded(f"task {task_id} did not end in time")
        # The server closed the stream without the ended status: it has none
        # left to send (resumed after the end) or it is going away.
        current = yield from _task(c, task_id, timeout=deadline.cap(c.timeout))
        if current.ended:
            yield Item(StatusEvent(last[0] or "", current.status, current.error, current))
        return current.ended

    def open_():
        headers = {"Last-Event-ID": last[0]} if last[0] else {}
        return open_events(f"/api/task/{task_id}/events", deadline, headers)

    return (yield from resumed(open_, read, deadline, c.retry))


def wait(c, task: TaskRef, *, timeout: float | None = None) -> Task:
    """The task once it has ended (succeeded, failed or cancelled): check
    `task.succeeded`, or call `task.raise_for_status()`."""
    if isinstance(task, Task) and task.ended and task.created_at is not None:
        return task
    event = yield from relay(events(c, task, timeout=timeout), _until_ended)
    ended = event.task or (yield from _task(c, task))
    if ended.status_url:
        return ended
    return dataclasses.replace(ended, status_url=f"{c.url}/api/task/{ended.task_id}")


def _until_ended(event: Any) -> Any:
    return Stop(event) if isinstance(event, StatusEvent) and event.status.ended else SKIP


@stream
def iter_frames(c, task: TaskRef, *, timeout: float | None = None):
    """A video task's frames as they are done (those already done first); raises
    TaskFailed / TaskCancelled if the task does not succeed."""
    frame = lambda e: e.frame if isinstance(e, FrameEvent) else _until_ended(e)  # noqa: E731
    event = yield from relay(events(c, task, timeout=timeout), frame)
    (event.task or (yield from _task(c, task))).raise_for_status()


# --- what the shared operations (`_ops`) ask of the REST transport -----------------------


class _Base(Closing):
    """`url` defaults to PERCEPT_URL, else the running `make run` stack's, else
    http://127.0.0.1:8000; `api_key` to PERCEPT_API_KEY, else the stack's admin
    key when `url` is the stack's (see `percept.stack`). `timeout` bounds each
    plain request (retries included), `wait_timeout` how long waiting for a
    task may take (None: no limit). `transport` is an httpx transport (for
    proxies, tests or mounting an app)."""

    _httpx: Any  # httpx.Client or httpx.AsyncClient

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        wait_timeout: float | None = 3600.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url, key = stack.rest_settings(url, api_key)
        self.timeout, self.wait_timeout = timeout, wait_timeout
        self.retry = retry or RetryPolicy()
        headers = {"User-Agent": "percept-python/0.1", **(headers or {})}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = self._httpx(base_url=self.url, headers=headers, transport=transport)
        self._kinds: list[KindInfo] | None = None

    def _detect(self, kind, image, options, color, timeout, fields, extra=None):
        """One image as a task, submitted in simple mode and waited for."""
        deadline = deadline_for(timeout, self.wait_timeout)
        done = yield from submit(
            self, kind, image, options, media="image", color=color, wait=True,
            timeout=deadline.remaining(), **fields, **(extra or {}),
        )  # fmt: skip
        if not done.ended:
            done = yield from wait(self, done, timeout=deadline.remaining())
        done.raise_for_status()
        return done.result

    def _video(self, kind, video, options, color, timeout, fields, extra=None):
        """A video as a task, its frames as they are done; stopping early cancels it."""
        started = yield from submit(self, kind, video, options, media="video", color=color,
                                    **fields, **(extra or {}))  # fmt: skip
        yield Defer(lambda: cancel(self, started))
        relabel = lambda f: f if f.kind is kind else dataclasses.replace(f, kind=kind)  # noqa: E731
        frames = iter_frames(self, started, timeout=None if timeout is DEFAULT else timeout)
        return (yield from relay(frames, relabel))

    def _route(self, route: Route, values: dict[str, Any], timeout, image=None):
        """A declared route: path values in the path, the others in the query of a
        GET or DELETE, in the JSON body (or with an image, the form) otherwise."""
        sent = {route.rename.get(k, k): v for k, v in values.items()}
        path = route.path.format(**{n: segment(sent.pop(n), n) for n in route.in_path})
        if image is not None:  # (image, color), the values as a multipart form
            kw = {"files": inputs.image_upload(*image),
                  "data": {k: form_value(v) for k, v in sent.items()}}  # fmt: skip
        elif route.method in ("GET", "DELETE"):
            kw = {"params": {k: form_value(v) for k, v in sent.items() if v is not None}}
        else:
            kw = {"json": sent}
        read = lambda answer: route.read_answer(answer, values)  # noqa: E731
        return (yield from call(self, route.method, path, read, timeout, stores=route.stores, **kw))


# --- the REST-only routes: deleting a face by id, live sources ------------------------------

_SOURCE = "/api/sources/{source_id}"
ROUTES = [
    Route("delete_face", "DELETE", "/api/collections/{collection_id}/faces/{face_id}",
          doc="Delete an enrolled face, everywhere; NotFound when there is no such face."),
    Route("add_source", "POST", "/api/sources", Source.from_json, "Register a camera, stream "
          "or file (rtsp://, http(s)://, file://); the stack's source workers start on it at "
          "once. `fields`: name, detect ('objects', 'faces', 'both'), max_fps, zones, lines, "
          "object_options, ...", args=("url",), fields=True),
    Route("sources", "GET", "/api/sources", lambda b: [Source.from_json(s) for s in b["sources"]],
          "Your sources with their state, rates and counts."),
    Route("source", "GET", _SOURCE, Source.from_json),
    Route("change_source", "PATCH", _SOURCE, Source.from_json,
          "Change only the fields given; the worker applies it at once.", fields=True),
    Route("pause_source", "POST", _SOURCE + "/pause", Source.from_json),
    Route("resume_source", "POST", _SOURCE + "/resume", Source.from_json),
    Route("delete_source", "DELETE", _SOURCE),
]  # fmt: skip


def health(c, *, timeout: float | None = None) -> Health:
    """Whether the gateway answers (/healthz) and is ready (/readyz, with its checks).
    Tried once: an unreachable gateway raises Unavailable at once."""
    deadline = deadline_for(timeout, c.timeout)
    yield from request(c, "GET", "/healthz", deadline=deadline, retry=NO_RETRY)
    ready = yield from request(c, "GET", "/readyz", deadline=deadline, retry=NO_RETRY, ok=(503,))
    body = body_of(ready)
    checks = body.get("checks", {}) if isinstance(body, Mapping) else {}
    return Health(True, ready.status_code == 200, {k: bool(v) for k, v in checks.items()})


OPERATIONS = [
    kinds, submit, task, cancel, tasks, iter_tasks, events, wait, iter_frames, health,
    *_ops.OPERATIONS, *map(operation, ROUTES + webhooks.ROUTES),
    *webhooks.OPERATIONS,
]  # fmt: skip


# --- the two I/Os ------------------------------------------------------------------------------


class Client(_Base):
    """The REST API, synchronously. Thread-safe; use one per process and close it."""

    __doc__ += "\n\n    " + (_Base.__doc__ or "")
    _httpx = httpx.Client

    def close(self) -> None:
        self._http.close()

    def perform(self, effect: Any) -> Any:
        """Run one effect of an operation (see `_core`) with httpx."""
        try:
            if isinstance(effect, Next):
                return next(effect.handle[1], None)
            if isinstance(effect, Close):
                return effect.handle[0].close()
            with contextlib.ExitStack() as files:
                sent = self._http.build_request(**effect.send(files))
                response = self._http.send(sent, stream=effect.opens)
            if effect.opens and response.is_error:
                with contextlib.closing(response):  # closed even if its body breaks off
                    response.read()  # the error's body
            checked(response, effect.ok)
            return (response, EventSource(response).iter_sse()) if effect.opens else response
        except httpx.TransportError as exc:
            raise network_error(self.url, exc, getattr(effect, "deadline", None)) from None

    def as_completed(
        self, tasks: Iterable[TaskRef], *, timeout: float | None = None, concurrency: int = 8
    ) -> Iterator[Task]:
        """The tasks as each one ends, in the order they end."""
        pool = concurrent.futures.ThreadPoolExecutor(concurrency)  # a thread per task at most
        try:
            futures = [pool.submit(self.wait, t, timeout=timeout) for t in tasks]
            for future in concurrent.futures.as_completed(futures):
                yield future.result()
        finally:
            pool.shutdown(cancel_futures=True)  # the waits not started; the others end

    def wait_all(
        self, tasks: Iterable[TaskRef], *, timeout: float | None = None, concurrency: int = 8
    ) -> list[Task]:
        """Every task once it has ended, in the order given."""
        tasks = list(tasks)
        return _in_order(tasks, self.as_completed(tasks, timeout=timeout, concurrency=concurrency))


class AsyncClient(_Base):
    """The REST API for asyncio: the same methods as `Client`, awaited.

    `events()` and `iter_frames()` / `detect_*_in_video()` are async iterators;
    `as_completed()` is an async iterator and `wait_all()` gathers.
    """

    __doc__ += "\n\n    " + (_Base.__doc__ or "")
    _httpx = httpx.AsyncClient

    async def aclose(self) -> None:
        await self._http.aclose()

    async def perform(self, effect: Any) -> Any:
        """Run one effect of an operation (see `_core`) with httpx, awaited."""
        try:
            if isinstance(effect, Next):
                return await anext(effect.handle[1], None)
            if isinstance(effect, Close):
                return await effect.handle[0].aclose()
            with contextlib.ExitStack() as files:
                sent = self._http.build_request(**effect.send(files))
                response = await self._http.send(sent, stream=effect.opens)
            if effect.opens and response.is_error:
                async with contextlib.aclosing(response):  # closed even if its body breaks off
                    await response.aread()  # the error's body
            checked(response, effect.ok)
            return (response, EventSource(response).aiter_sse()) if effect.opens else response
        except httpx.TransportError as exc:
            raise network_error(self.url, exc, getattr(effect, "deadline", None)) from None

    async def as_completed(
        self, tasks: Iterable[TaskRef], *, timeout: float | None = None, concurrency: int = 32
    ) -> AsyncIterator[Task]:
        """The tasks as each one ends (at most `concurrency` event streams open at once)."""
        limit = asyncio.Semaphore(concurrency)

        async def one(t: TaskRef) -> Task:
            async with limit:
                return await self.wait(t, timeout=timeout)

        pending = [asyncio.ensure_future(one(t)) for t in tasks]
        try:
            for next_done in asyncio.as_completed(pending):
                yield await next_done
        finally:
            for future in pending:
                future.cancel()

    async def wait_all(
        self, tasks: Iterable[TaskRef], *, timeout: float | None = None, concurrency: int = 32
    ) -> list[Task]:
        """Every task once it has ended, in the order given."""
        tasks = list(tasks)
        ended = self.as_completed(tasks, timeout=timeout, concurrency=concurrency)
        return _in_order(tasks, [t async for t in ended])


install(Client, OPERATIONS, asynchronous=False)
install(AsyncClient, OPERATIONS, asynchronous=True)
