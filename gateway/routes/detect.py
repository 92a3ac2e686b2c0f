"""POST /api/detect/{face|object}/{image|video}: upload, get a task id at once
(202), or the result with ?wait=true (simple mode)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from gateway.deps import BackendsDep, SettingsDep, StoreDep
from gateway.errors import error_response, http_status_for_task_error
from gateway.jobs import TERMINAL, JobStore, Task
from gateway.metrics import TASKS_SUBMITTED
from gateway.options import OPTIONS, task_options
from percept_runtime.errors import InvalidInput
from percept_runtime.imaging import ACCEPTED_TEXT, open_image
from percept_runtime.video import VideoPolicy, VideoReader

router = APIRouter(tags=["detect"])

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
IMAGE_TYPES = {
    "image/jpeg",
    "image/jpg",
    "image/png",
    "image/webp",
    "image/bmp",
    "image/x-ms-bmp",
    "application/octet-stream",
}
_MULTIPART_OVERHEAD = 64 * 1024


class RequestProblem(Exception):
    """A caller mistake found while reading a submit request."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.response = error_response(status, code, message, **extra)


def _video_type_ok(content_type: str) -> bool:
    return content_type.startswith("video/") or content_type in (
        "application/octet-stream",
        "application/x-matroska",
    )


def _probe_video(data: bytes) -> None:
    reader = VideoReader(content=data, policy=VideoPolicy(max_frames=1))
    try:
        if next(iter(reader), None) is None:
            raise InvalidInput("video has no decodable frames")
    finally:
        reader.close()


async def _read_upload(request: Request, media: str, limit: int) -> tuple[bytes, dict[str, str]]:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + _MULTIPART_OVERHEAD:
        raise RequestProblem(
            413, "too_large", f"upload is {int(length)} bytes; the {media} limit is {limit} bytes"
        )
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise RequestProblem(
            415,
            "unsupported_media_type",
            f"send multipart/form-data with the {media} in the field 'file' (got {content_type or 'no content type'})",
        )
    form = await request.form(max_files=1, max_fields=64)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise RequestProblem(
            422,
            "invalid_request",
            f"field 'file' is required: the {media} to process, as a multipart file",
            fields=["file"],
        )
    if upload.size is not None and upload.size > limit:
        raise RequestProblem(
            413, "too_large", f"file is {upload.size} bytes; the {media} limit is {limit} bytes"
        )
    data = await upload.read()
    if not data:
        raise RequestProblem(422, "invalid_request", "field 'file' is empty", fields=["file"])
    upload_type = (upload.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if media == "image" and upload_type not in IMAGE_TYPES:
        raise RequestProblem(
            415,
            "unsupported_media_type",
            f"file has content type {upload_type}: send a {ACCEPTED_TEXT} image",
        )
    if media == "video" and not _video_type_ok(upload_type):
        raise RequestProblem(
            415,
            "unsupported_media_type",
            f"file has content type {upload_type}: send a video (video/*)",
        )
    fields = {k: v for k, v in form.multi_items() if k != "file" and isinstance(v, str)}
    return data, fields


def _options(kind: str, media: str, request: Request, form_fields: dict[str, str]):
    model = OPTIONS[(kind, media)]
    raw = {k: v for k, v in request.query_params.items() if k != "wait"}
    raw.update(form_fields)
    try:
        return model(**raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
        ]
        fields = [".".join(str(p) for p in e["loc"]) for e in exc.errors()]
        raise RequestProblem(422, "invalid_option", "; ".join(problems), fields=fields) from None


async def _wait(store: JobStore, task_id: str, wait_s: float) -> Task | None:
    deadline = time.monotonic() + wait_s
    after = "0"
    while (left := deadline - time.monotonic()) > 0:
        for event in await store.events(task_id, after, block_ms=max(1, int(min(left, 5) * 1000))):
            after = event.id
            if event.type == "status" and event.data.get("status") in TERMINAL:
                return await store.get(task_id)
    return None


def _accepted(task: Task, request: Request) -> JSONResponse:
    url = str(request.url_for("get_task", task_id=task.id))
    return JSONResponse(
        {"task_id": task.id, "status": task.status.value, "status_url": url},
        status_code=202,
        headers={"Location": url},
    )


def _multipart_doc(kind: str, media: str) -> dict:
    schema = OPTIONS[(kind, media)].model_json_schema()
    properties = {
        "file": {"type": "string", "format": "binary", "description": f"The {media}."},
        **schema["properties"],
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": ["file"], "properties": properties}
                }
            },
        }
    }


def _add_route(kind: str, media: str) -> None:
    backend = kind.split("_")[0]

    async def submit(
        request: Request,
        store: StoreDep,
        backends: BackendsDep,
        settings: SettingsDep,
        wait: bool = Query(
            False, description="Simple mode: answer 200 with the result when it is ready in time."
        ),
        idempotency_key: str | None = Header(
            None, description="Same key, same task: a retry never submits twice."
        ),
    ) -> JSONResponse:
        try:
            if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
                raise RequestProblem(
                    400,
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1-128 characters of letters, digits, '.', '_', ':' or '-'",
                )
            limit = settings.max_image_bytes if media == "image" else settings.max_video_bytes
            data, form_fields = await _read_upload(request, media, limit)
            options = task_options(_options(kind, media, request, form_fields))
            if kind == "object_detection" and options["class_names"]:
                known = await backends.object_classes()
                unknown = [
                    n for n in options["class_names"] if known is not None and n not in known
                ]
                if unknown:
                    raise RequestProblem(
                        422,
                        "invalid_option",
                        f"classes: unknown class names {unknown}; the model knows {known}",
                        fields=["classes"],
                    )
            try:
                if media == "image":
                    open_image(data, settings.max_image_pixels)
                else:
                    await asyncio.to_thread(_probe_video, data)
            except InvalidInput as exc:
                raise RequestProblem(
                    422, f"invalid_{media}", exc.message, fields=["file"]
                ) from None
        except RequestProblem as problem:
            return problem.response
        task, created = await store.submit(kind, media, options, data, idempotency_key)
        if created:
            TASKS_SUBMITTED.labels(kind, media).inc()
        if wait:
            done = await _wait(store, task.id, settings.wait_timeout_s)
            if done is not None:
                if done.error:
                    return error_response(
                        http_status_for_task_error(done.error),
                        done.error["code"],
                        done.error["message"],
                        task_id=done.id,
                    )
                return JSONResponse(
                    done.to_json(str(request.url_for("get_task", task_id=done.id))), status_code=200
                )
        return _accepted(task, request)

    router.add_api_route(
        f"/api/detect/{backend}/{media}",
        submit,
        methods=["POST"],
        name=f"detect_{backend}_{media}",
        summary=f"Detect {'faces' if backend == 'face' else 'objects'} in an uploaded {media}",
        status_code=202,
        openapi_extra=_multipart_doc(kind, media),
        response_class=JSONResponse,
    )


for _kind, _media in OPTIONS:
    _add_route(_kind, _media)
