"""The submit routes, one per declared task kind (gateway/kinds.py): upload,
get a task id at once (202), or the result with ?wait=true (simple mode).

The handler is lean on purpose (it is the hot path): it reads the upload once,
checks it, parses the options straight into the gRPC request message and hands
that to the Submitter; its answer is prebuilt JSON. The documentation (body,
every option with its proto range and comment, every status) comes from the
same declaration.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway import protoform, webhooks
from gateway.declare import CheckContext, TaskKind
from gateway.errors import ApiError, error_response, http_status_for_task_error
from gateway.inputs import check_image, check_video
from gateway.models import Accepted, error_responses, task_url
from gateway.upload import read_upload

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
WEBHOOK = "webhook"  # a submit option that is not the proto's: the subscription to tell


def _wait(request: Request) -> bool:
    value = request.query_params.get("wait")
    if value is None or value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    raise ApiError(
        422,
        "invalid_option",
        f"wait: {value[:64]!r} is not valid: use true or false",
        fields=["wait"],
    )


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-128 characters of letters, digits, '.', '_', ':' or '-'",
        )
    return key


async def _webhook(gw, raw: dict[str, str], tenant: str) -> str | None:
    """The subscription a task names (its `webhook` option): one of the
    caller's tenant's (the task's end is published to that tenant), else 404."""
    sub_id = raw.pop(WEBHOOK, None)
    if sub_id is None:
        return None
    try:
        await webhooks.WebhookStore(gw.store.redis).get(sub_id, tenant)
    except webhooks.SubscriptionNotFound:
        raise ApiError(
            404,
            "not_found",
            f"webhook: no webhook subscription {sub_id[:64]!r} in your tenant "
            "(GET /api/webhooks lists them)",
            fields=[WEBHOOK],
        ) from None
    return sub_id


def make_handler(kind: TaskKind):
    async def submit(request: Request) -> JSONResponse:
        gw = request.app.state.gateway
        settings = gw.settings
        wait = _wait(request)
        idempotency_key = _idempotency_key(request)
        principal = gw.auth.principal(request)
        if kind.media == "image":
            upload = await read_upload(request, "image", settings.max_image_bytes)
            size = check_image(upload.data, upload.content_type, settings.max_image_pixels)
        else:
            upload = await read_upload(request, "video", settings.max_video_bytes)
            size = await check_video(upload.data, upload.content_type, settings.max_image_pixels)
        raw = protoform.options_of(request.query_params.multi_items(), upload.fields, ("wait",))
        webhook = await _webhook(gw, raw, principal.tenant)
        message = kind.build(upload.data, raw)
        del upload  # the message holds its own copy of the bytes: one copy at a time
        if kind.checks:
            context = CheckContext(
                gw.backends, settings, size, tenant=principal.tenant, collections=gw.backends
            )
            for check in kind.checks:
                await check(message, context)
        serialized, options = message.SerializeToString(), kind.options(message)
        if webhook is not None:
            options[WEBHOOK] = webhook  # kept with the task; its end event names it
        # only the serialized request is held from here on (the submit may wait
        # its turn to reach Redis, or run inline for as long as the call takes)
        del message
        task_id, task, status = await gw.submitter.submit(
            kind,
            serialized,
            options,
            principal=principal,
            idempotency_key=idempotency_key,
            wait=wait,
        )
        status_url = task_url(request, task_id)
        if task is not None:
            if task.error:
                return error_response(
                    http_status_for_task_error(task.error),
                    task.error["code"],
                    task.error["message"],
                    task_id=task.id,
                )
            return JSONResponse(task.to_json(status_url), status_code=200)
        return JSONResponse(
            {"task_id": task_id, "status": status, "status_url": status_url},
            status_code=202,
            headers={"Location": status_url},
        )

    return submit


def _openapi(kind: TaskKind) -> dict[str, Any]:
    """The route's request documentation, from the kind's proto request."""
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": f"The {kind.media}."}
    }
    for name, param in kind.params.items():
        if name in kind.preset:
            continue
        properties[name] = protoform.openapi_schema(param)
    for alias, target in kind.aliases.items():
        if isinstance(target, str):
            properties[alias] = {
                **protoform.openapi_schema(kind.params[target]),
                "description": f"Same as {target}.",
            }
        else:
            properties[alias] = {"type": "string", "description": (target.__doc__ or "").strip()}
    properties[WEBHOOK] = {
        "type": "string",
        "description": "A webhook subscription id of your tenant (sub_...): the task's end "
        "event goes to it, even one that takes only the tasks naming it (tasks: named).",
    }
    return {
        "parameters": [
            {
                "name": "wait",
                "in": "query",
                "required": False,
                "schema": {"type": "boolean", "default": False},
                "description": "Simple mode: answer 200 with the finished task when it ends in time.",
            },
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
                "description": "Same key and same request, same task: a retry never submits twice.",
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", *kind.required],
                        "properties": properties,
                    }
                }
            },
        },
    }


def router_for(kinds: tuple[TaskKind, ...], task_model) -> APIRouter:
    router = APIRouter(tags=["submit"])
    for kind in kinds:
        errors = error_responses(400, 401, 404, 413, 415, 422, 429, 500, 503, 504, *kind.errors)
        unknown = "Unknown webhook subscription" + (" or collection" if 404 in kind.errors else "")
        errors[404] = {**errors[404], "description": unknown}
        router.add_api_route(
            kind.path,
            make_handler(kind),
            methods=["POST"],
            name=f"submit_{kind.kind}_{kind.media}",
            summary=kind.summary,
            description=(
                f"Task kind `{kind.kind}` on one {kind.media}, run by "
                f"`{kind.backend.service_name}/{kind.method}`. Options are form fields "
                "(or query parameters); unset ones take the service's defaults."
            ),
            status_code=202,
            response_model=Accepted,
            responses={
                200: {"model": task_model, "description": "Simple mode: the finished task."},
                **errors,
            },
            openapi_extra=_openapi(kind),
            response_class=JSONResponse,
        )
    return router
