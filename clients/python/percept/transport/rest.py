"""REST through the gateway: `Client` (sync) and `AsyncClient` (asyncio).

Both speak the routes in the repository README: submit (`POST
/api/detect/{face|object}/{image|video}`, multipart, with an Idempotency-Key
on every submit), `GET /api/task/{id}`, its Server-Sent Events, `DELETE` to
cancel, `GET /api/tasks`, `/healthz` and `/readyz`. Requests and answers are
built and read by the module-level helpers below, once; the two classes only
differ in how they wait for the network.

Authentication: `api_key=` (or PERCEPT_API_KEY, or the running `make run`
stack's admin key: see `percept.stack`) is sent as `Authorization: Bearer <key>`
on every request.

Face collections (`/api/collections...`): create, list, describe and delete
collections; enroll, list and delete faces and subjects; search by an enrolled
face and verify (one request each); `identify` / `identify_in_video` are tasks
of kind `face_identification`, waited for like detections. An enroll is retried
only when the gateway answered (503, 429: nothing was stored), never after a
network error, so a face is not enrolled twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import httpx
from httpx_sse import aconnect_sse, connect_sse

from percept import inputs, stack
from percept.errors import (
    Conflict,
    DeadlineExceeded,
    InvalidInput,
    PerceptError,
    Unavailable,
    from_http,
)
from percept.inputs import Color, ImageInput, VideoInput
from percept.options import FaceOptions, ObjectOptions, merge, to_form
from percept.retry import NO_RETRY, Deadline, RetryPolicy
from percept.transport._paging import awalk, walk
from percept.types import (
    Collection,
    CollectionPage,
    EnrolledFace,
    Enrollment,
    FacePage,
    FrameEvent,
    FrameResult,
    Health,
    Identification,
    ImageResult,
    Kind,
    Media,
    Source,
    StatusEvent,
    Task,
    TaskEvent,
    TaskPage,
    TaskStatus,
    Verification,
    VideoURI,
    event_from_sse,
)
from percept.webhooks import AsyncWebhookMethods, WebhookMethods

DEFAULT_URL = stack.DEFAULT_URL
CONNECT_TIMEOUT_S = 10.0
# The gateway sends an event or a keep-alive at least every 10 s: a stream
# silent for this long is dead, and is reopened where it stopped.
SSE_READ_TIMEOUT_S = 45.0

TaskRef = Task | str


def _task_id(task: TaskRef) -> str:
    return task.task_id if isinstance(task, Task) else str(task)


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _timeout(deadline: Deadline, read: float | None = None) -> httpx.Timeout:
    left = deadline.cap(read)
    return httpx.Timeout(left, connect=deadline.cap(CONNECT_TIMEOUT_S))


def _network_error(url: str, exc: Exception, deadline: Deadline) -> PerceptError:
    if deadline.expired:
        return DeadlineExceeded(f"no answer from {url} before the deadline ({exc})")
    return Unavailable(f"cannot reach {url}: {exc or type(exc).__name__}", code="unreachable")


@dataclass(frozen=True, slots=True)
class _Upload:
    """One submit: where it goes and how to build its body for each attempt."""

    kind: Kind
    media: Media
    path: str
    form: dict[str, str]
    idempotency_key: str
    filename: str
    content_type: str
    data: bytes | None = None
    file_path: str | os.PathLike | None = None
    file: IO[bytes] | None = None
    file_start: int = 0

    def files(self, stack: contextlib.ExitStack) -> dict[str, Any]:
        """The multipart file for one attempt: a video on disk is opened and streamed
        (httpx reads it in chunks), never read whole into memory."""
        if self.data is not None:
            content: Any = self.data
        elif self.file_path is not None:
            content = stack.enter_context(open(self.file_path, "rb"))  # noqa: SIM115
        else:
            assert self.file is not None
            self.file.seek(self.file_start)
            content = self.file
        return {"file": (self.filename, content, self.content_type)}


def identify_form(
    kind: Kind, collection_id: str | None, top_k: int | None, threshold: float | None
) -> dict[str, str]:
    """The identification fields of a submit (kind "identify" only, which needs a collection)."""
    if kind is not Kind.IDENTIFY:
        if collection_id is not None or top_k is not None or threshold is not None:
            raise ValueError("collection_id, top_k and threshold are for kind 'identify'")
        return {}
    if not collection_id:
        raise ValueError("identify needs a collection_id")
    form = {"collection_id": collection_id}
    if top_k is not None:
        form["top_k"] = str(top_k)
    if threshold is not None:
        form["threshold"] = repr(float(threshold))
    return form


def _upload(
    kind: Kind | str,
    source: ImageInput | VideoInput,
    options: FaceOptions | ObjectOptions | None,
    fields: Mapping[str, Any],
    media: Media | None,
    color: Color | None,
    idempotency_key: str | None,
    extra: Mapping[str, str] | None = None,
) -> _Upload:
    kind = Kind.parse(kind)
    if isinstance(source, VideoURI):
        raise ValueError(
            "the REST gateway takes uploads: pass the video's path, bytes or file "
            "(a VideoURI is for GrpcClient)"
        )
    opts = merge(FaceOptions if kind.faces else ObjectOptions, options, fields)  # type: ignore[arg-type]
    media = media or inputs.guess_media(source)
    form = {**to_form(opts, media), **(extra or {})}
    key = idempotency_key or uuid.uuid4().hex
    route = kind.path(media)
    if media == "image":
        data = inputs.image_bytes(source, color)  # type: ignore[arg-type]
        content_type = inputs.image_content_type(data)
        name = (
            os.path.basename(os.fspath(source))
            if isinstance(source, str | os.PathLike)
            else "image." + content_type.rsplit("/", 1)[-1].replace("octet-stream", "bin")
        )
        return _Upload(kind, media, route, form, key, name, content_type, data=data)
    if color is not None:
        raise ValueError("color= applies to numpy arrays only")
    name = inputs.video_name(source)  # type: ignore[arg-type]
    content_type = inputs.video_content_type(name)
    common = (kind, media, route, form, key, name, content_type)
    if isinstance(source, str | os.PathLike):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"no such video: {source}")
        return _Upload(*common, file_path=source)
    if isinstance(source, bytes | bytearray | memoryview):
        return _Upload(*common, data=bytes(source))
    if hasattr(source, "read") and hasattr(source, "seek"):
        return _Upload(*common, file=source, file_start=source.tell())  # type: ignore[arg-type]
    raise TypeError(f"a video is a path, bytes or a binary file (got {type(source).__name__})")


def _accepted(upload: _Upload, body: Mapping[str, Any]) -> Task:
    return Task(
        task_id=body["task_id"],
        kind=upload.kind,
        media=upload.media,
        status=TaskStatus(body.get("status", "queued")),
        status_url=body.get("status_url"),
    )


def _list_params(
    status: TaskStatus | str | None,
    kind: Kind | str | None,
    limit: int,
    cursor: str | None,
    id_prefix: str | None = None,
) -> dict[str, str]:
    params = {"limit": str(limit)}
    if id_prefix:
        params["q"] = id_prefix
    if status:
        params["status"] = TaskStatus(status).value
    if kind:
        params["kind"] = Kind.parse(kind).value
    if cursor:
        params["cursor"] = cursor
    return params


def _page(body: Mapping[str, Any]) -> TaskPage:
    return TaskPage(tuple(Task.from_json(t) for t in body["tasks"]), body.get("next_cursor"))


def _event(sse: Any) -> TaskEvent | None:
    try:
        data = json.loads(sse.data) if sse.data else {}
    except ValueError:
        return None
    return event_from_sse(sse.id, sse.event, data)


def _cancelled_already(error: PerceptError, task: Task) -> bool:
    return isinstance(error, Conflict) and task.status is TaskStatus.CANCELLED


# --- face collections: each call is one request, built and read here once ---------------------


@dataclass(frozen=True, slots=True)
class _AnsweredOnly(RetryPolicy):
    """Retry only what the server answered (429, 502/503: nothing was done), never
    a network error after which the request may have been carried out."""

    def retryable(self, error: PerceptError, *, conflict: bool = False) -> bool:
        return error.status is not None and RetryPolicy.retryable(self, error, conflict=conflict)


def _answered_only(policy: RetryPolicy) -> RetryPolicy:
    return _AnsweredOnly(**{f.name: getattr(policy, f.name) for f in dataclasses.fields(policy)})


@dataclass(frozen=True, slots=True)
class _Call:
    """One request of the collection API and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    params: Mapping[str, str] | None = None
    json: Any = None
    data: Mapping[str, str] | None = None
    files: Callable[[contextlib.ExitStack], dict[str, Any]] | None = None
    answered_only: bool = False


def _segment(value: str, what: str) -> str:
    """One URL path segment. An all-dots value ('.', '..', '...') cannot be one:
    HTTP clients drop '.' or climb a level at '..' (and the server refuses such
    ids where they are created), so it is refused here rather than sent elsewhere."""
    text = str(value)
    if text and text.strip(".") == "":
        raise InvalidInput(
            f"{what} {text!r} is only dots: a URL path cannot carry '.', '..' or '...' "
            "as themselves",
            code="invalid_argument",
            fields=(what.replace(" ", "_"),),
        )
    return urllib.parse.quote(text, safe="")


def _collection_path(collection_id: str) -> str:
    return f"/api/collections/{_segment(collection_id, 'collection id')}"


def _paging(page_size: int | None, page_token: str | None, **extra: str | None) -> dict[str, str]:
    params = {k: v for k, v in extra.items() if v}
    if page_size is not None:
        params["page_size"] = str(page_size)
    if page_token:
        params["page_token"] = page_token
    return params


def _image_form(
    source: ImageInput,
    color: Color | None,
    options: FaceOptions | None,
    fields: Mapping[str, Any],
    form: Mapping[str, Any],
) -> tuple[Callable[[contextlib.ExitStack], dict[str, Any]], dict[str, str]]:
    data = inputs.image_bytes(source, color)
    content_type = inputs.image_content_type(data)
    name = (
        os.path.basename(os.fspath(source))
        if isinstance(source, str | os.PathLike)
        else "image." + content_type.rsplit("/", 1)[-1].replace("octet-stream", "bin")
    )
    opts = merge(FaceOptions, options, fields)
    body = {**to_form(opts, "image")}
    for key, value in form.items():
        if value is not None:
            body[key] = repr(float(value)) if isinstance(value, float) else str(value)
    return (lambda _stack: {"file": (name, data, content_type)}), body


def _c_create(collection_id: str, description: str) -> _Call:
    return _Call(
        "POST",
        "/api/collections",
        lambda r: Collection.from_json(r.json()),
        json={"collection_id": collection_id, "description": description},
    )


def _c_list(page_size: int | None, page_token: str | None) -> _Call:
    def parse(r: httpx.Response) -> CollectionPage:
        body = r.json()
        return CollectionPage(
            tuple(Collection.from_json(c) for c in body["collections"]),
            body.get("next_page_token"),
        )

    return _Call("GET", "/api/collections", parse, params=_paging(page_size, page_token))


def _c_get(collection_id: str) -> _Call:
    return _Call("GET", _collection_path(collection_id), lambda r: Collection.from_json(r.json()))


def _c_delete(collection_id: str) -> _Call:
    return _Call("DELETE", _collection_path(collection_id), lambda r: None)


def _c_enroll(collection_id, image, subject, external_id, max_faces, options, color, fields):
    files, data = _image_form(
        image,
        color,
        options,
        fields,
        {"subject": subject, "external_id": external_id, "max_faces": max_faces},
    )
    return _Call(
        "POST",
        f"{_collection_path(collection_id)}/faces",
        lambda r: Enrollment.from_json(r.json()),
        data=data,
        files=files,
        answered_only=True,
    )


def _c_faces(collection_id, subject, page_size, page_token) -> _Call:
    def parse(r: httpx.Response) -> FacePage:
        body = r.json()
        return FacePage(
            tuple(EnrolledFace.from_json(f) for f in body["faces"]), body.get("next_page_token")
        )

    return _Call(
        "GET",
        f"{_collection_path(collection_id)}/faces",
        parse,
        params=_paging(page_size, page_token, subject=subject),
    )


def _c_delete_face(collection_id: str, face_id: str) -> _Call:
    return _Call(
        "DELETE",
        f"{_collection_path(collection_id)}/faces/{_segment(face_id, 'face id')}",
        lambda r: None,
    )


def _c_delete_subject(collection_id: str, subject: str) -> _Call:
    return _Call(
        "DELETE",
        f"{_collection_path(collection_id)}/subjects/{_segment(subject, 'subject')}",
        lambda r: int(r.json()["deleted_faces"]),
    )


def _c_search(collection_id, face_id, top_k, threshold) -> _Call:
    body: dict[str, Any] = {"face_id": face_id}
    if top_k is not None:
        body["top_k"] = top_k
    if threshold is not None:
        body["threshold"] = threshold
    return _Call(
        "POST",
        f"{_collection_path(collection_id)}/search",
        lambda r: Identification.from_json(r.json()),
        json=body,
    )


def _c_verify(collection_id, image, subject, threshold, options, color, fields) -> _Call:
    files, data = _image_form(
        image, color, options, fields, {"subject": subject, "threshold": threshold}
    )
    return _Call(
        "POST",
        f"{_collection_path(collection_id)}/verify",
        lambda r: Verification.from_json(r.json()),
        data=data,
        files=files,
    )


def _source_path(source_id: str, action: str = "") -> str:
    return f"/api/sources/{_segment(source_id, 'source id')}{action}"


def _s_add(fields: Mapping[str, Any]) -> _Call:
    return _Call("POST", "/api/sources", lambda r: Source.from_json(r.json()), json=dict(fields))


def _s_list() -> _Call:
    return _Call(
        "GET", "/api/sources", lambda r: [Source.from_json(s) for s in r.json()["sources"]]
    )


def _s_get(source_id: str) -> _Call:
    return _Call("GET", _source_path(source_id), lambda r: Source.from_json(r.json()))


def _s_change(source_id: str, fields: Mapping[str, Any]) -> _Call:
    return _Call(
        "PATCH", _source_path(source_id), lambda r: Source.from_json(r.json()), json=dict(fields)
    )


def _s_action(source_id: str, action: str) -> _Call:
    return _Call(
        "POST", _source_path(source_id, f"/{action}"), lambda r: Source.from_json(r.json())
    )


def _s_delete(source_id: str) -> _Call:
    return _Call("DELETE", _source_path(source_id), lambda r: None)


class _Base:
    def __init__(
        self,
        url: str | None,
        api_key: str | None,
        timeout: float,
        wait_timeout: float | None,
        retry: RetryPolicy | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        self.url, key = stack.rest_settings(url, api_key)
        self.timeout = timeout
        self.wait_timeout = wait_timeout
        self.retry = retry or RetryPolicy()
        self._headers = {"User-Agent": "percept-python/0.1", **(headers or {})}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"

    def _with_url(self, task: Task) -> Task:
        """The events' copy of a task has no status_url; give it the one GET answers with."""
        if task.status_url:
            return task
        return dataclasses.replace(task, status_url=f"{self.url}/api/task/{task.task_id}")

    def _submit_timeout(self, timeout: float | None, wait: bool) -> float | None:
        if timeout is not None:
            return timeout
        return self.wait_timeout if wait else self.timeout

    def _next_delay(
        self,
        error: PerceptError,
        attempt: int,
        deadline: Deadline,
        retry: RetryPolicy,
        conflict: bool,
    ) -> float:
        """How long to wait before the next try; raises `error` when there is none."""
        if not retry.retryable(error, conflict=conflict):
            raise error
        delay = retry.delay(attempt, error.retry_after)
        if delay is None or not deadline.allows(delay):
            raise error
        return delay


class Client(WebhookMethods, _Base):
    """The REST API, synchronously. Thread-safe; use one per process and close it.

    `url` defaults to PERCEPT_URL, else the running `make run` stack's, else
    http://127.0.0.1:8000; `api_key` to PERCEPT_API_KEY, else the stack's admin
    key when `url` is the stack's (see `percept.stack`). `timeout` bounds each plain request (retries included),
    `wait_timeout` how long waiting for a task may take (None: no limit).
    `transport` is an httpx transport (for proxies, tests or mounting an app).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        wait_timeout: float | None = 3600.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key, timeout, wait_timeout, retry, headers)
        self._http = httpx.Client(base_url=self.url, headers=self._headers, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the one request loop -------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        deadline: Deadline,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        files: Callable[[contextlib.ExitStack], dict[str, Any]] | None = None,
        data: Mapping[str, str] | None = None,
        json: Any = None,
        retry: RetryPolicy | None = None,
        conflict_retry: bool = False,
        ok: Iterable[int] = (),
    ) -> httpx.Response:
        retry = retry or self.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                with contextlib.ExitStack() as stack:
                    response = self._http.request(
                        method,
                        path,
                        params=params,
                        headers=headers,
                        files=files(stack) if files else None,
                        data=data,
                        json=json,
                        timeout=_timeout(deadline),
                    )
            except httpx.TransportError as exc:
                error = _network_error(self.url, exc, deadline)
            else:
                if response.status_code < 400 or response.status_code in ok:
                    return response
                error = from_http(response.status_code, _body(response), response.headers)
            time.sleep(self._next_delay(error, attempt, deadline, retry, conflict_retry))

    # --- tasks ------------------------------------------------------------------------------
    def submit(
        self,
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
        """Upload an image or video for `kind` ("face" or "object") and return its task.

        `media` is guessed from the input when not given. Every submit carries an
        Idempotency-Key (a new one unless given), so the retries it makes itself
        never create a second task. `wait=True` asks the gateway to answer with the
        ended task when it ends quickly (simple mode); the task is returned either way
        (check `task.ended`). Options: an options object and/or keywords (see
        FaceOptions, ObjectOptions). Kind "identify" takes `collection_id` (required),
        `top_k` and `threshold` too. `webhook` names a webhook subscription (its id)
        that the task's end event goes to (see `webhooks.create(..., tasks="named")`).
        """
        kind = Kind.parse(kind)
        extra = identify_form(kind, collection_id, top_k, threshold)
        if webhook is not None:
            extra["webhook"] = webhook
        upload = _upload(kind, source, options, fields, media, color, idempotency_key, extra)
        deadline = Deadline(self._submit_timeout(timeout, wait))
        try:
            response = self._request(
                "POST",
                upload.path,
                deadline=deadline,
                params={"wait": "true"} if wait else None,
                headers={"Idempotency-Key": upload.idempotency_key},
                files=upload.files,
                data=upload.form,
                conflict_retry=True,
            )
        except PerceptError as error:
            if error.task_id:  # simple mode: the task ran and failed
                return self.task(error.task_id)
            raise
        body = response.json()
        return Task.from_json(body) if response.status_code == 200 else _accepted(upload, body)

    def task(self, task: TaskRef, *, timeout: float | None = None) -> Task:
        """The task's current record (status, progress, result or error)."""
        deadline = Deadline(timeout if timeout is not None else self.timeout)
        response = self._request("GET", f"/api/task/{_task_id(task)}", deadline=deadline)
        return Task.from_json(response.json())

    def cancel(self, task: TaskRef, *, timeout: float | None = None) -> Task:
        """Cancel a queued or running task. Cancelling a cancelled task returns it;
        one that already succeeded or failed raises Conflict."""
        deadline = Deadline(timeout if timeout is not None else self.timeout)
        try:
            response = self._request("DELETE", f"/api/task/{_task_id(task)}", deadline=deadline)
        except Conflict as error:
            current = self.task(task, timeout=deadline.remaining())
            if _cancelled_already(error, current):
                return current
            raise
        return Task.from_json(response.json())

    def tasks(
        self,
        *,
        status: TaskStatus | str | None = None,
        kind: Kind | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        id_prefix: str | None = None,
        timeout: float | None = None,
    ) -> TaskPage:
        """One page of tasks, newest first (only ids starting with `id_prefix`, 4+ hex digits)."""
        deadline = Deadline(timeout if timeout is not None else self.timeout)
        params = _list_params(status, kind, limit, cursor, id_prefix)
        return _page(self._request("GET", "/api/tasks", deadline=deadline, params=params).json())

    def iter_tasks(
        self,
        *,
        status: TaskStatus | str | None = None,
        kind: Kind | str | None = None,
        page_size: int = 100,
    ) -> Iterator[Task]:
        """Every task, newest first, fetching pages as needed."""
        return walk(
            lambda c: self.tasks(status=status, kind=kind, limit=page_size, cursor=c),
            "tasks",
            "next_cursor",
        )

    def events(
        self, task: TaskRef, *, after: str | None = None, timeout: float | None = None
    ) -> Iterator[TaskEvent]:
        """The task's events as they happen (everything so far first), ending with the
        ended status, which carries the whole task. A dropped stream is reopened
        where it stopped (Last-Event-ID)."""
        task_id = _task_id(task)
        deadline = Deadline(timeout if timeout is not None else self.wait_timeout)
        last_id, attempt = after, 0
        while True:
            attempt += 1
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with connect_sse(
                    self._http,
                    "GET",
                    f"/api/task/{task_id}/events",
                    headers=headers,
                    timeout=_timeout(deadline, SSE_READ_TIMEOUT_S),
                ) as source:
                    response = source.response
                    if response.status_code >= 400:
                        response.read()
                        raise from_http(response.status_code, _body(response), response.headers)
                    for sse in source.iter_sse():
                        attempt = 0
                        last_id = sse.id or last_id
                        event = _event(sse)
                        if event is not None:
                            yield event
                            if isinstance(event, StatusEvent) and event.status.ended:
                                return
                        if deadline.expired:
                            raise DeadlineExceeded(f"task {task_id} did not end in time")
                # The server closed the stream without the ended status: it has none
                # left to send (resumed after the end) or it is going away.
                current = self.task(task_id, timeout=deadline.cap(self.timeout))
                if current.ended:
                    yield StatusEvent(last_id or "", current.status, current.error, current)
                    return
                continue
            except httpx.TransportError as exc:
                error = _network_error(self.url, exc, deadline)
            except PerceptError as exc:
                error = exc
            time.sleep(self._next_delay(error, max(attempt, 1), deadline, self.retry, False))

    def wait(self, task: TaskRef, *, timeout: float | None = None) -> Task:
        """The task once it has ended (succeeded, failed or cancelled): check
        `task.succeeded`, or call `task.raise_for_status()`."""
        if isinstance(task, Task) and task.ended and task.created_at is not None:
            return task
        for event in self.events(task, timeout=timeout):
            if isinstance(event, StatusEvent) and event.status.ended:
                return self._with_url(event.task or self.task(task))
        return self.task(task)  # pragma: no cover - events() always ends with a status

    def as_completed(
        self, tasks: Iterable[TaskRef], *, timeout: float | None = None, concurrency: int = 8
    ) -> Iterator[Task]:
        """The tasks as each one ends, in the order they end."""
        tasks = list(tasks)
        if not tasks:
            return
        with concurrent.futures.ThreadPoolExecutor(min(concurrency, len(tasks))) as pool:
            futures = [pool.submit(self.wait, t, timeout=timeout) for t in tasks]
            try:
                for future in concurrent.futures.as_completed(futures):
                    yield future.result()
            finally:
                for future in futures:
                    future.cancel()

    def wait_all(
        self, tasks: Iterable[TaskRef], *, timeout: float | None = None, concurrency: int = 8
    ) -> list[Task]:
        """Every task once it has ended, in the order given."""
        tasks = list(tasks)
        done = {
            t.task_id: t for t in self.as_completed(tasks, timeout=timeout, concurrency=concurrency)
        }
        return [done[_task_id(t)] for t in tasks]

    def iter_frames(self, task: TaskRef, *, timeout: float | None = None) -> Iterator[FrameResult]:
        """A video task's frames as they are done (those already done first); raises
        TaskFailed / TaskCancelled if the task does not succeed."""
        for event in self.events(task, timeout=timeout):
            if isinstance(event, FrameEvent):
                yield event.frame
            elif isinstance(event, StatusEvent) and event.status.ended:
                (event.task or self.task(task)).raise_for_status()

    # --- one call, one result -----------------------------------------------------------------
    def _detect(self, kind, image, options, color, timeout, fields) -> ImageResult:
        deadline = Deadline(timeout if timeout is not None else self.wait_timeout)
        task = self.submit(
            kind, image, options, media="image", color=color, wait=True,
            timeout=deadline.remaining(), **fields,
        )  # fmt: skip
        if not task.ended:
            task = self.wait(task, timeout=deadline.remaining())
        task.raise_for_status()
        assert isinstance(task.result, ImageResult)
        return task.result

    def detect_faces(
        self,
        image: ImageInput,
        options: FaceOptions | None = None,
        *,
        color: Color | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> ImageResult:
        """The faces in one image (submitted as a task, waited for)."""
        return self._detect(Kind.FACE, image, options, color, timeout, fields)

    def detect_objects(
        self,
        image: ImageInput,
        options: ObjectOptions | None = None,
        *,
        color: Color | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> ImageResult:
        """The objects in one image (submitted as a task, waited for)."""
        return self._detect(Kind.OBJECT, image, options, color, timeout, fields)

    def _video(self, kind, video, options, timeout, fields) -> Iterator[FrameResult]:
        task = self.submit(kind, video, options, media="video", **fields)
        ended = False
        try:
            for frame in self.iter_frames(task, timeout=timeout):
                yield frame if frame.kind is kind else dataclasses.replace(frame, kind=kind)
            ended = True
        except PerceptError:
            ended = True
            raise
        finally:
            if not ended:  # the caller stopped early: stop the server's work too
                with contextlib.suppress(PerceptError):
                    self.cancel(task)

    def detect_faces_in_video(
        self,
        video: VideoInput,
        options: FaceOptions | None = None,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> Iterator[FrameResult]:
        """Upload a video (streamed from disk) and yield each processed frame as it is
        done. Stopping early cancels the task."""
        return self._video(Kind.FACE, video, options, timeout, fields)

    def detect_objects_in_video(
        self,
        video: VideoInput,
        options: ObjectOptions | None = None,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> Iterator[FrameResult]:
        """Upload a video (streamed from disk) and yield each processed frame as it is
        done. Stopping early cancels the task."""
        return self._video(Kind.OBJECT, video, options, timeout, fields)

    # --- face collections ---------------------------------------------------------------------
    def _send(self, call: _Call, timeout: float | None) -> Any:
        deadline = Deadline(timeout if timeout is not None else self.timeout)
        response = self._request(
            call.method,
            call.path,
            deadline=deadline,
            params=call.params,
            json=call.json,
            data=call.data,
            files=call.files,
            retry=_answered_only(self.retry) if call.answered_only else None,
        )
        return call.parse(response)

    def create_collection(
        self,
        collection_id: str,
        description: str = "",
        *,
        exist_ok: bool = False,
        timeout: float | None = None,
    ) -> Collection:
        """A new, empty face collection; Conflict when the id is taken (by you),
        unless `exist_ok` (then the existing collection, as it is)."""
        try:
            return self._send(_c_create(collection_id, description), timeout)
        except Conflict:
            if not exist_ok:
                raise
            return self.collection(collection_id, timeout=timeout)

    def collections(
        self,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: float | None = None,
    ) -> CollectionPage:
        """One page of your collections, by id."""
        return self._send(_c_list(page_size, page_token), timeout)

    def iter_collections(self, *, page_size: int = 100) -> Iterator[Collection]:
        """Every collection, fetching pages as needed."""
        return walk(
            lambda token: self.collections(page_size=page_size, page_token=token), "collections"
        )

    def collection(self, collection_id: str, *, timeout: float | None = None) -> Collection:
        """A collection with its face and subject counts; NotFound when you have none so named."""
        return self._send(_c_get(collection_id), timeout)

    def delete_collection(self, collection_id: str, *, timeout: float | None = None) -> None:
        """Delete a collection and every face in it, everywhere."""
        self._send(_c_delete(collection_id), timeout)

    def enroll(
        self,
        collection_id: str,
        image: ImageInput,
        subject: str,
        *,
        external_id: str | None = None,
        max_faces: int | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Enrollment:
        """Enroll the image's largest face (up to `max_faces`, largest first) under
        `subject`. InvalidInput when the image has no face large enough."""
        call = _c_enroll(
            collection_id, image, subject, external_id, max_faces, options, color, fields
        )
        return self._send(call, timeout)

    def faces(
        self,
        collection_id: str,
        *,
        subject: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: float | None = None,
    ) -> FacePage:
        """One page of a collection's enrolled faces (of one subject, if given)."""
        return self._send(_c_faces(collection_id, subject, page_size, page_token), timeout)

    def iter_faces(
        self, collection_id: str, *, subject: str | None = None, page_size: int = 100
    ) -> Iterator[EnrolledFace]:
        """Every face of the collection (of `subject` if given), fetching pages as needed."""
        return walk(
            lambda token: self.faces(
                collection_id, subject=subject, page_size=page_size, page_token=token
            ),
            "faces",
        )

    def delete_face(
        self, collection_id: str, face_id: str, *, timeout: float | None = None
    ) -> None:
        """Delete an enrolled face, everywhere; NotFound when there is no such face."""
        self._send(_c_delete_face(collection_id, face_id), timeout)

    def delete_subject(
        self, collection_id: str, subject: str, *, timeout: float | None = None
    ) -> int:
        """Delete every face of a subject, everywhere; -> how many."""
        return self._send(_c_delete_subject(collection_id, subject), timeout)

    def search(
        self,
        collection_id: str,
        face_id: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        timeout: float | None = None,
    ) -> Identification:
        """The enrolled faces closest to an enrolled face (itself left out)."""
        return self._send(_c_search(collection_id, face_id, top_k, threshold), timeout)

    def verify(
        self,
        collection_id: str,
        image: ImageInput,
        subject: str,
        *,
        threshold: float | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Verification:
        """Is the image's largest face `subject`'s? (`.match`, `.distance`)"""
        call = _c_verify(collection_id, image, subject, threshold, options, color, fields)
        return self._send(call, timeout)

    def identify(
        self,
        image: ImageInput,
        collection_id: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> ImageResult:
        """Every face of an image with its matches in a collection (`face.subject`,
        None when unknown): a face_identification task, waited for."""
        ident = {"collection_id": collection_id, "top_k": top_k, "threshold": threshold}
        return self._detect(Kind.IDENTIFY, image, options, color, timeout, {**fields, **ident})

    def identify_in_video(
        self,
        video: VideoInput,
        collection_id: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        options: FaceOptions | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Iterator[FrameResult]:
        """Upload a video and yield each processed frame, every face with its matches,
        as it is done. Stopping early cancels the task."""
        ident = {"collection_id": collection_id, "top_k": top_k, "threshold": threshold}
        return self._video(Kind.IDENTIFY, video, options, timeout, {**fields, **ident})

    # --- operations ---------------------------------------------------------------------------
    # --- live sources ------------------------------------------------------------------

    def add_source(self, url: str, *, timeout: float | None = None, **fields: Any) -> Source:
        """Register a camera, stream or file (rtsp://, http(s)://, file://); the
        stack's source workers start on it at once. `fields`: name, detect
        ('objects', 'faces', 'both'), max_fps, zones, lines, object_options, ..."""
        return self._send(_s_add({"url": url, **fields}), timeout)

    def sources(self, *, timeout: float | None = None) -> list[Source]:
        """Your sources with their state, rates and counts."""
        return self._send(_s_list(), timeout)

    def source(self, source_id: str, *, timeout: float | None = None) -> Source:
        return self._send(_s_get(source_id), timeout)

    def change_source(
        self, source_id: str, *, timeout: float | None = None, **fields: Any
    ) -> Source:
        """Change only the fields given; the worker applies it at once."""
        return self._send(_s_change(source_id, fields), timeout)

    def pause_source(self, source_id: str, *, timeout: float | None = None) -> Source:
        return self._send(_s_action(source_id, "pause"), timeout)

    def resume_source(self, source_id: str, *, timeout: float | None = None) -> Source:
        return self._send(_s_action(source_id, "resume"), timeout)

    def delete_source(self, source_id: str, *, timeout: float | None = None) -> None:
        self._send(_s_delete(source_id), timeout)

    def health(self, *, timeout: float | None = None) -> Health:
        """Whether the gateway answers (/healthz) and is ready (/readyz, with its checks).
        Tried once: an unreachable gateway raises Unavailable at once."""
        deadline = Deadline(timeout if timeout is not None else self.timeout)
        self._request("GET", "/healthz", deadline=deadline, retry=NO_RETRY)
        ready = self._request("GET", "/readyz", deadline=deadline, retry=NO_RETRY, ok=(503,))
        body = _body(ready)
        checks = body.get("checks", {}) if isinstance(body, Mapping) else {}
        return Health(True, ready.status_code == 200, {k: bool(v) for k, v in checks.items()})


class AsyncClient(AsyncWebhookMethods, _Base):
    """The REST API for asyncio: the same methods as `Client`, awaited.

    `events()` and `iter_frames()` / `detect_*_in_video()` are async iterators;
    `as_completed()` is an async iterator and `wait_all()` gathers.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        wait_timeout: float | None = 3600.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key, timeout, wait_timeout, retry, headers)
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=self._headers, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        deadline: Deadline,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        files: Callable[[contextlib.ExitStack], dict[str, Any]] | None = None,
        data: Mapping[str, str] | None = None,
        json: Any = None,
        retry: RetryPolicy | None = None,
        conflict_retry: bool = False,
        ok: Iterable[int] = (),
    ) -> httpx.Response:
        retry = retry or self.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                with contextlib.ExitStack() as stack:
                    response = await self._http.request(
                        method,
                        path,
                        params=params,
                        headers=headers,
                        files=files(stack) if files else None,
                        data=data,
                        json=json,
                        timeout=_timeout(deadline),
                    )
            except httpx.TransportError as exc:
                error = _network_error(self.url, exc, deadline)
            else:
                if response.status_code < 400 or response.status_code in ok:
                    return response
                error = from_http(response.status_code, _body(response), response.headers)
            await asyncio.sleep(self._next_delay(error, attempt, deadline, retry, conflict_retry))

    async def submit(
        self,
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
        """See `Client.submit`. A video file is streamed from disk (read in chunks)."""
        kind = Kind.parse(kind)
        extra = identify_form(kind, collection_id, top_k, threshold)
        if webhook is not None:
            extra["webhook"] = webhook
        upload = _upload(kind, source, options, fields, media, color, idempotency_key, extra)
        deadline = Deadline(self._submit_timeout(timeout, wait))
        try:
            response = await self._request(
                "POST",
                upload.path,
                deadline=deadline,
                params={"wait": "true"} if wait else None,
                headers={"Idempotency-Key": upload.idempotency_key},
                files=upload.files,
                data=upload.form,
                conflict_retry=True,
            )
        except PerceptError as error:
            if error.task_id:
                return await self.task(error.task_id)
            raise
        body = response.json()
        return Task.from_json(body) if response.status_code == 200 else _accepted(upload, body)

    async def task(self, task: TaskRef, *, timeout: float | None = None) -> Task:
        deadline = Deadline(timeout if timeout is not None else self.timeout)
        response = await self._request("GET", f"/api/task/{_task_id(task)}", deadline=deadline)
        return Task.from_json(response.json())

    async def cancel(self, task: TaskRef, *, timeout: float | None = None) -> Task:
        deadline = Deadline(timeout if timeout is not None else self.timeout)
        try:
            response = await self._request(
                "DELETE", f"/api/task/{_task_id(task)}", deadline=deadline
            )
        except Conflict as error:
            current = await self.task(task, timeout=deadline.remaining())
            if _cancelled_already(error, current):
                return current
            raise
        return Task.from_json(response.json())

    async def tasks(
        self,
        *,
        status: TaskStatus | str | None = None,
        kind: Kind | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        id_prefix: str | None = None,
        timeout: float | None = None,
    ) -> TaskPage:
        """One page of tasks, newest first (only ids starting with `id_prefix`, 4+ hex digits)."""
        deadline = Deadline(timeout if timeout is not None else self.timeout)
        params = _list_params(status, kind, limit, cursor, id_prefix)
        response = await self._request("GET", "/api/tasks", deadline=deadline, params=params)
        return _page(response.json())

    def iter_tasks(
        self,
        *,
        status: TaskStatus | str | None = None,
        kind: Kind | str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Task]:
        """Every task, newest first, fetching pages as needed (`async for`)."""
        return awalk(
            lambda c: self.tasks(status=status, kind=kind, limit=page_size, cursor=c),
            "tasks",
            "next_cursor",
        )

    async def events(
        self, task: TaskRef, *, after: str | None = None, timeout: float | None = None
    ) -> AsyncIterator[TaskEvent]:
        task_id = _task_id(task)
        deadline = Deadline(timeout if timeout is not None else self.wait_timeout)
        last_id, attempt = after, 0
        while True:
            attempt += 1
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                async with aconnect_sse(
                    self._http,
                    "GET",
                    f"/api/task/{task_id}/events",
                    headers=headers,
                    timeout=_timeout(deadline, SSE_READ_TIMEOUT_S),
                ) as source:
                    response = source.response
                    if response.status_code >= 400:
                        await response.aread()
                        raise from_http(response.status_code, _body(response), response.headers)
                    async for sse in source.aiter_sse():
                        attempt = 0
                        last_id = sse.id or last_id
                        event = _event(sse)
                        if event is not None:
                            yield event
                            if isinstance(event, StatusEvent) and event.status.ended:
                                return
                        if deadline.expired:
                            raise DeadlineExceeded(f"task {task_id} did not end in time")
                current = await self.task(task_id, timeout=deadline.cap(self.timeout))
                if current.ended:
                    yield StatusEvent(last_id or "", current.status, current.error, current)
                    return
                continue
            except httpx.TransportError as exc:
                error = _network_error(self.url, exc, deadline)
            except PerceptError as exc:
                error = exc
            await asyncio.sleep(
                self._next_delay(error, max(attempt, 1), deadline, self.retry, False)
            )

    async def wait(self, task: TaskRef, *, timeout: float | None = None) -> Task:
        if isinstance(task, Task) and task.ended and task.created_at is not None:
            return task
        async for event in self.events(task, timeout=timeout):
            if isinstance(event, StatusEvent) and event.status.ended:
                return self._with_url(event.task or await self.task(task))
        return await self.task(task)  # pragma: no cover

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
        tasks = list(tasks)
        done = {
            t.task_id: t
            async for t in self.as_completed(tasks, timeout=timeout, concurrency=concurrency)
        }
        return [done[_task_id(t)] for t in tasks]

    async def iter_frames(
        self, task: TaskRef, *, timeout: float | None = None
    ) -> AsyncIterator[FrameResult]:
        async for event in self.events(task, timeout=timeout):
            if isinstance(event, FrameEvent):
                yield event.frame
            elif isinstance(event, StatusEvent) and event.status.ended:
                (event.task or await self.task(task)).raise_for_status()

    async def _detect(self, kind, image, options, color, timeout, fields) -> ImageResult:
        deadline = Deadline(timeout if timeout is not None else self.wait_timeout)
        task = await self.submit(
            kind, image, options, media="image", color=color, wait=True,
            timeout=deadline.remaining(), **fields,
        )  # fmt: skip
        if not task.ended:
            task = await self.wait(task, timeout=deadline.remaining())
        task.raise_for_status()
        assert isinstance(task.result, ImageResult)
        return task.result

    async def detect_faces(
        self,
        image: ImageInput,
        options: FaceOptions | None = None,
        *,
        color: Color | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> ImageResult:
        return await self._detect(Kind.FACE, image, options, color, timeout, fields)

    async def detect_objects(
        self,
        image: ImageInput,
        options: ObjectOptions | None = None,
        *,
        color: Color | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> ImageResult:
        return await self._detect(Kind.OBJECT, image, options, color, timeout, fields)

    async def _video(self, kind, video, options, timeout, fields) -> AsyncIterator[FrameResult]:
        task = await self.submit(kind, video, options, media="video", **fields)
        ended = False
        try:
            async for frame in self.iter_frames(task, timeout=timeout):
                yield frame if frame.kind is kind else dataclasses.replace(frame, kind=kind)
            ended = True
        except PerceptError:
            ended = True
            raise
        finally:
            if not ended:
                with contextlib.suppress(PerceptError):
                    await asyncio.shield(self.cancel(task))

    def detect_faces_in_video(
        self,
        video: VideoInput,
        options: FaceOptions | None = None,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> AsyncIterator[FrameResult]:
        return self._video(Kind.FACE, video, options, timeout, fields)

    def detect_objects_in_video(
        self,
        video: VideoInput,
        options: ObjectOptions | None = None,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> AsyncIterator[FrameResult]:
        return self._video(Kind.OBJECT, video, options, timeout, fields)

    # --- face collections ---------------------------------------------------------------------
    async def _send(self, call: _Call, timeout: float | None) -> Any:
        deadline = Deadline(timeout if timeout is not None else self.timeout)
        response = await self._request(
            call.method,
            call.path,
            deadline=deadline,
            params=call.params,
            json=call.json,
            data=call.data,
            files=call.files,
            retry=_answered_only(self.retry) if call.answered_only else None,
        )
        return call.parse(response)

    async def create_collection(
        self,
        collection_id: str,
        description: str = "",
        *,
        exist_ok: bool = False,
        timeout: float | None = None,
    ) -> Collection:
        """A new, empty face collection; Conflict when the id is taken (by you),
        unless `exist_ok` (then the existing collection, as it is)."""
        try:
            return await self._send(_c_create(collection_id, description), timeout)
        except Conflict:
            if not exist_ok:
                raise
            return await self.collection(collection_id, timeout=timeout)

    async def collections(
        self,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: float | None = None,
    ) -> CollectionPage:
        """One page of your collections, by id."""
        return await self._send(_c_list(page_size, page_token), timeout)

    def iter_collections(self, *, page_size: int = 100) -> AsyncIterator[Collection]:
        """Every collection, fetching pages as needed (`async for`)."""
        return awalk(
            lambda token: self.collections(page_size=page_size, page_token=token), "collections"
        )

    async def collection(self, collection_id: str, *, timeout: float | None = None) -> Collection:
        """A collection with its face and subject counts; NotFound when you have none so named."""
        return await self._send(_c_get(collection_id), timeout)

    async def delete_collection(self, collection_id: str, *, timeout: float | None = None) -> None:
        """Delete a collection and every face in it, everywhere."""
        await self._send(_c_delete(collection_id), timeout)

    async def enroll(
        self,
        collection_id: str,
        image: ImageInput,
        subject: str,
        *,
        external_id: str | None = None,
        max_faces: int | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Enrollment:
        """Enroll the image's largest face (up to `max_faces`, largest first) under
        `subject`. InvalidInput when the image has no face large enough."""
        call = _c_enroll(
            collection_id, image, subject, external_id, max_faces, options, color, fields
        )
        return await self._send(call, timeout)

    async def faces(
        self,
        collection_id: str,
        *,
        subject: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: float | None = None,
    ) -> FacePage:
        """One page of a collection's enrolled faces (of one subject, if given)."""
        return await self._send(_c_faces(collection_id, subject, page_size, page_token), timeout)

    def iter_faces(
        self, collection_id: str, *, subject: str | None = None, page_size: int = 100
    ) -> AsyncIterator[EnrolledFace]:
        """Every face of the collection (of `subject` if given), fetching pages as needed."""
        return awalk(
            lambda token: self.faces(
                collection_id, subject=subject, page_size=page_size, page_token=token
            ),
            "faces",
        )

    async def delete_face(
        self, collection_id: str, face_id: str, *, timeout: float | None = None
    ) -> None:
        """Delete an enrolled face, everywhere; NotFound when there is no such face."""
        await self._send(_c_delete_face(collection_id, face_id), timeout)

    async def delete_subject(
        self, collection_id: str, subject: str, *, timeout: float | None = None
    ) -> int:
        """Delete every face of a subject, everywhere; -> how many."""
        return await self._send(_c_delete_subject(collection_id, subject), timeout)

    async def search(
        self,
        collection_id: str,
        face_id: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        timeout: float | None = None,
    ) -> Identification:
        """The enrolled faces closest to an enrolled face (itself left out)."""
        return await self._send(_c_search(collection_id, face_id, top_k, threshold), timeout)

    async def verify(
        self,
        collection_id: str,
        image: ImageInput,
        subject: str,
        *,
        threshold: float | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Verification:
        """Is the image's largest face `subject`'s? (`.match`, `.distance`)"""
        call = _c_verify(collection_id, image, subject, threshold, options, color, fields)
        return await self._send(call, timeout)

    async def identify(
        self,
        image: ImageInput,
        collection_id: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        options: FaceOptions | None = None,
        color: Color | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> ImageResult:
        """Every face of an image with its matches in a collection (`face.subject`,
        None when unknown): a face_identification task, waited for."""
        ident = {"collection_id": collection_id, "top_k": top_k, "threshold": threshold}
        return await self._detect(
            Kind.IDENTIFY, image, options, color, timeout, {**fields, **ident}
        )

    def identify_in_video(
        self,
        video: VideoInput,
        collection_id: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        options: FaceOptions | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> AsyncIterator[FrameResult]:
        """Upload a video and yield each processed frame, every face with its matches,
        as it is done. Stopping early cancels the task."""
        ident = {"collection_id": collection_id, "top_k": top_k, "threshold": threshold}
        return self._video(Kind.IDENTIFY, video, options, timeout, {**fields, **ident})

    # --- live sources ------------------------------------------------------------------

    async def add_source(self, url: str, *, timeout: float | None = None, **fields: Any) -> Source:
        return await self._send(_s_add({"url": url, **fields}), timeout)

    async def sources(self, *, timeout: float | None = None) -> list[Source]:
        return await self._send(_s_list(), timeout)

    async def source(self, source_id: str, *, timeout: float | None = None) -> Source:
        return await self._send(_s_get(source_id), timeout)

    async def change_source(
        self, source_id: str, *, timeout: float | None = None, **fields: Any
    ) -> Source:
        return await self._send(_s_change(source_id, fields), timeout)

    async def pause_source(self, source_id: str, *, timeout: float | None = None) -> Source:
        return await self._send(_s_action(source_id, "pause"), timeout)

    async def resume_source(self, source_id: str, *, timeout: float | None = None) -> Source:
        return await self._send(_s_action(source_id, "resume"), timeout)

    async def delete_source(self, source_id: str, *, timeout: float | None = None) -> None:
        await self._send(_s_delete(source_id), timeout)

    async def health(self, *, timeout: float | None = None) -> Health:
        deadline = Deadline(timeout if timeout is not None else self.timeout)
        await self._request("GET", "/healthz", deadline=deadline, retry=NO_RETRY)
        ready = await self._request("GET", "/readyz", deadline=deadline, retry=NO_RETRY, ok=(503,))
        body = _body(ready)
        checks = body.get("checks", {}) if isinstance(body, Mapping) else {}
        return Health(True, ready.status_code == 200, {k: bool(v) for k, v in checks.items()})
