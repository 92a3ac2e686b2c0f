"""Webhook routes: subscriptions per tenant, their secrets, their delivery log."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway import declare, events, webhooks
from gateway.errors import ApiError
from gateway.models import ascii_int, error_responses
from gateway.webhooks import Subscription, SubscriptionNotFound, TargetRefused, WebhookStore
from gateway.webhooks_delivery import test_event

# Every route may answer these; the routes on one subscription add 404 (SUB).
router = APIRouter(tags=["webhooks"], responses=error_responses(401, 422, 503))
SUB = error_responses(404)
MAX_FILTERS = 100
TASKS_DOC = (
    "Task events of every matching task (all), or only of tasks that name this "
    "subscription in their `webhook` option (named). A task naming it reaches it either way, "
    "whatever `kinds` says."
)


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="https:// (or http://) URL Percept POSTs each event to.")
    types: list[str] = Field(
        min_length=1, description=f"Event types wanted: {', '.join(events.EVENT_TYPES)}."
    )
    kinds: list[str] = Field(
        default_factory=list, description="Task events only of these kinds (empty: all)."
    )
    source_ids: list[str] = Field(
        default_factory=list, description="Source events only of these sources (empty: all)."
    )
    tasks: Literal["all", "named"] = Field("all", description=TASKS_DOC)
    description: str = Field("", max_length=200)


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    types: list[str] | None = None
    kinds: list[str] | None = None
    source_ids: list[str] | None = None
    tasks: Literal["all", "named"] | None = None
    description: str | None = Field(None, max_length=200)
    enabled: bool | None = None


class SubscriptionOut(BaseModel):
    id: str
    tenant: str
    url: str
    types: list[str]
    kinds: list[str]
    source_ids: list[str]
    tasks: Literal["all", "named"] = Field(description=TASKS_DOC)
    description: str
    enabled: bool
    created_at: float = Field(description="Unix seconds.")
    secret: str | None = Field(None, description="whsec_...: shown at creation and rotation only.")
    previous_secret_valid_until: float | None = Field(
        None, description="After a rotation: until when the old secret also signs (Unix s)."
    )


def _store(request: Request) -> WebhookStore:
    gw = request.app.state.gateway
    return WebhookStore(gw.store.redis, retention_s=gw.settings.events_max_age_s)


def _check_filters(types, kinds, source_ids) -> None:
    if types is not None:
        if not types:
            raise ApiError(422, "invalid_types", "types must name at least one event type")
        unknown = sorted(set(types) - set(events.EVENT_TYPES))
        if unknown:
            raise ApiError(
                422, "invalid_types",
                f"unknown event type {', '.join(unknown)}; one of {', '.join(events.EVENT_TYPES)}",
                fields=["types"],
            )  # fmt: skip
    if kinds is not None:
        known = sorted({k.kind for k in declare.kinds()})  # plug-in kinds too
        unknown = sorted(set(kinds) - set(known))
        if unknown:
            raise ApiError(
                422, "invalid_kinds",
                f"unknown kind {', '.join(unknown)}; one of {', '.join(known)}",
                fields=["kinds"],
            )  # fmt: skip
    for name, values in (("types", types), ("kinds", kinds), ("source_ids", source_ids)):
        if values is not None and len(values) > MAX_FILTERS:
            raise ApiError(422, "invalid_request", f"{name}: at most {MAX_FILTERS} values")


async def _check_target(request: Request, url: str) -> None:
    allow = request.app.state.gateway.settings.webhook_allow_private
    try:
        _scheme, host, port = webhooks.check_url(url)
        await webhooks.resolve(host, port, allow)
    except TargetRefused as exc:
        raise ApiError(422, "invalid_url", f"url: {exc}", fields=["url"]) from None


async def _get(request: Request, sub_id: str) -> Subscription:
    gw = request.app.state.gateway
    try:
        return await _store(request).get(sub_id, gw.auth.principal(request).scope)
    except SubscriptionNotFound:
        raise ApiError(404, "not_found", f"no webhook subscription {sub_id}") from None


@router.post(
    "/api/webhooks",
    status_code=201,
    summary="Subscribe a URL to events (the answer carries its signing secret, once)",
    response_model=SubscriptionOut,
)
async def create_subscription(body: SubscriptionIn, request: Request) -> JSONResponse:
    gw = request.app.state.gateway
    _check_filters(body.types, body.kinds, body.source_ids)
    await _check_target(request, body.url)
    sub = Subscription(
        id="", tenant=gw.auth.principal(request).tenant, url=body.url,
        types=list(dict.fromkeys(body.types)), kinds=body.kinds, source_ids=body.source_ids,
        tasks=body.tasks, description=body.description,
    )  # fmt: skip
    sub = await _store(request).create(sub)
    return JSONResponse(sub.to_json(secret=True), status_code=201)


@router.get(
    "/api/webhooks",
    summary="The tenant's webhook subscriptions (admins: all)",
    response_model=list[SubscriptionOut],
)
async def list_subscriptions(request: Request) -> JSONResponse:
    scope = request.app.state.gateway.auth.principal(request).scope
    return JSONResponse([s.to_json() for s in await _store(request).list(scope)])


@router.get(
    "/api/webhooks/{sub_id}",
    summary="One webhook subscription",
    response_model=SubscriptionOut,
    responses=SUB,
)
async def get_subscription(sub_id: str, request: Request) -> JSONResponse:
    return JSONResponse((await _get(request, sub_id)).to_json())


@router.patch(
    "/api/webhooks/{sub_id}",
    summary="Change a subscription's URL, filters or state",
    response_model=SubscriptionOut,
    responses=SUB,
)
async def update_subscription(
    sub_id: str, body: SubscriptionPatch, request: Request
) -> JSONResponse:
    sub = await _get(request, sub_id)
    _check_filters(body.types, body.kinds, body.source_ids)
    if body.url is not None:
        await _check_target(request, body.url)
    for name in ("url", "types", "kinds", "source_ids", "tasks", "description", "enabled"):
        value = getattr(body, name)
        if value is not None:
            setattr(sub, name, value)
    await _store(request).save(sub)
    return JSONResponse(sub.to_json())


@router.delete(
    "/api/webhooks/{sub_id}",
    status_code=204,
    summary="Delete a subscription and its pending deliveries",
    responses=SUB,
)
async def delete_subscription(sub_id: str, request: Request):
    sub = await _get(request, sub_id)
    await _store(request).delete(sub)
    return Response(status_code=204)


@router.post(
    "/api/webhooks/{sub_id}/rotate",
    summary="A new signing secret; the old one also signs for the overlap",
    response_model=SubscriptionOut,
    responses=SUB,
)
async def rotate_secret(sub_id: str, request: Request) -> JSONResponse:
    sub = await _get(request, sub_id)
    overlap = request.app.state.gateway.settings.webhook_rotation_overlap_s
    sub = await _store(request).rotate(sub, overlap)
    return JSONResponse(sub.to_json(secret=True))


@router.get(
    "/api/webhooks/{sub_id}/deliveries",
    summary="The delivery log: every attempt, newest first",
    responses=SUB,
)
async def delivery_log(
    sub_id: str,
    request: Request,
    limit: Annotated[ascii_int(ge=1, le=500), Query()] = 50,
    cursor: str | None = Query(None, pattern=r"^\d{1,20}-\d{1,20}$"),
) -> JSONResponse:
    sub = await _get(request, sub_id)
    store = _store(request)
    attempts, next_cursor = await store.deliveries(sub, limit=limit, cursor=cursor)
    failed = await store.failed(sub)
    body: dict[str, Any] = {"attempts": attempts, "next_cursor": next_cursor, "failed": failed}
    return JSONResponse(body)


@router.get(
    "/api/webhooks/{sub_id}/deliveries/{event_id}",
    summary="One delivery: its event, state, attempts and last answer",
    responses=SUB,
)
async def get_delivery(sub_id: str, event_id: str, request: Request) -> JSONResponse:
    sub = await _get(request, sub_id)
    found = await _store(request).delivery(sub, event_id)
    if found is None:
        raise ApiError(404, "not_found", f"no delivery of {event_id} to {sub_id}")
    return JSONResponse(found)


@router.post(
    "/api/webhooks/{sub_id}/deliveries/{event_id}/retry",
    status_code=202,
    summary="Send a delivery again (a failed one, typically)",
    responses=SUB,
)
async def send_again(sub_id: str, event_id: str, request: Request) -> JSONResponse:
    sub = await _get(request, sub_id)
    if not await _store(request).redeliver(sub, event_id):
        raise ApiError(404, "not_found", f"no delivery of {event_id} to {sub_id} (expired?)")
    return JSONResponse({"event_id": event_id, "status": "pending"}, status_code=202)


@router.post(
    "/api/webhooks/{sub_id}/test",
    status_code=202,
    summary="Send a test event (type webhook.test) to this subscription",
    responses=SUB,
)
async def send_test(sub_id: str, request: Request) -> JSONResponse:
    sub = await _get(request, sub_id)
    event = test_event(sub)
    await _store(request).enqueue(sub, event, time.time())
    return JSONResponse({"event_id": event["id"], "status": "pending"}, status_code=202)
