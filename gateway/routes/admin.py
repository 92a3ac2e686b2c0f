"""Sessions (the console's login) and API keys (admins manage them)."""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway import csrf, signin
from gateway.auth import COOKIE, presented_key
from gateway.errors import ApiError
from gateway.keys import LIMIT_MAX, TENANT_PATTERN, KeyStore, Limits
from gateway.models import error_responses

router = APIRouter(tags=["access"])


class Who(BaseModel):
    auth: Literal["enabled", "disabled"]
    name: str
    tenant: str
    role: Literal["admin", "client"]
    key_id: str = ""
    csrf_token: str = Field(
        "",
        description="Signed in by the session cookie: the X-CSRF-Token header its "
        "state-changing requests must send (empty for an API key).",
    )


class LimitsBody(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rps: float = Field(
        0,
        ge=0,
        le=LIMIT_MAX["rps"],
        description="Requests per second (token bucket); 0: unlimited.",
    )
    burst: int = Field(0, ge=0, le=LIMIT_MAX["burst"], description="Bucket size; 0 means 2 x rps.")
    tasks: int = Field(
        0,
        ge=0,
        le=LIMIT_MAX["tasks"],
        description="Tasks accepted and not ended at once; 0: unlimited.",
    )
    bytes: int = Field(
        0, ge=0, le=LIMIT_MAX["bytes"], description="Upload bytes queued at once; 0: unlimited."
    )
    videos: int = Field(
        0, ge=0, le=LIMIT_MAX["videos"], description="Video tasks accepted and not ended at once."
    )


class KeyInfo(BaseModel):
    id: str
    name: str
    tenant: str
    role: Literal["admin", "client"]
    limits: LimitsBody
    created_at: float
    revoked: bool


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    tenant: str | None = Field(
        None,
        pattern=TENANT_PATTERN,
        description="The tenant whose tasks and collections the key shares; left out, the key "
        "gets a tenant of its own (key-<its id>), shared with no other key.",
    )
    role: Literal["admin", "client"] = "client"
    limits: LimitsBody = LimitsBody()


class CreatedKey(BaseModel):
    key: str = Field(description="The API key itself: shown this once, stored only hashed.")
    info: KeyInfo


class KeyList(BaseModel):
    keys: list[KeyInfo]


def _who(principal, enabled: bool, session: str | None = None) -> dict:
    return {
        "auth": "enabled" if enabled else "disabled",
        "name": principal.name,
        "tenant": principal.tenant,
        "role": "admin" if principal.admin else "client",
        "key_id": principal.key_id,
        "csrf_token": csrf.token_for(session) if session else "",
    }


@router.get(
    "/api/session",
    summary="Who the presented key (or session) is",
    response_model=Who,
    responses=error_responses(401, 503),
)
async def whoami(request: Request) -> JSONResponse:
    gw = request.app.state.gateway
    principal = await gw.auth.authenticate(request)
    session = None if presented_key(request) else request.cookies.get(COOKIE)
    return JSONResponse(_who(principal, gw.auth.enabled, session if gw.auth.enabled else None))


# The login's body, as JSON or as a form.
_API_KEY_FORM = {
    "type": "object",
    "required": ["api_key"],
    "properties": {"api_key": {"type": "string"}},
}
_LOGIN_MEDIA_TYPES = ("application/json", "application/x-www-form-urlencoded")


@router.post(
    "/api/session",
    summary="Log in with an API key: sets the console's session cookie",
    description="Refused (403) from a page of another origin. Wrong keys are throttled "
    "per client address and per key id: 429 with Retry-After (GATEWAY_LOGIN_FAILURES "
    "per GATEWAY_LOGIN_WINDOW_S).",
    response_model=Who,
    responses=error_responses(401, 403, 422, 429, 503),
    openapi_extra={
        "requestBody": {
            "content": {media: {"schema": _API_KEY_FORM} for media in _LOGIN_MEDIA_TYPES}
        }
    },
)
async def login(request: Request) -> JSONResponse:
    gw = request.app.state.gateway
    csrf.check_origin(request, gw.auth.public_origins)  # login CSRF: no other page signs us in
    body = await request.body()
    key = None
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = None
        key = data.get("api_key") if isinstance(data, dict) else None
    else:
        form = await request.form()
        key = form.get("api_key")
    if not isinstance(key, str) or not key:
        raise ApiError(422, "invalid_request", "send the field api_key", fields=["api_key"])
    if not gw.auth.enabled:
        return JSONResponse(_who(gw.auth.principal(request), False))
    counted = signin.counters(request.client.host if request.client else None, key)
    await gw.signin.attempt(counted)
    opened = await gw.keys.open_session(key, gw.settings.session_ttl_s)
    if opened is None:
        raise ApiError(401, "unauthorized", "the API key is unknown or revoked")
    await gw.signin.succeeded(counted)
    token, record = opened
    response = JSONResponse(
        {"auth": "enabled", "name": record.name, "tenant": record.tenant,
         "role": record.role, "key_id": record.id, "csrf_token": csrf.token_for(token)}
    )  # fmt: skip
    response.set_cookie(
        COOKIE,
        token,  # a session of its own: the cookie never carries the key
        max_age=max(1, math.ceil(gw.settings.session_ttl_s)),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=request.scope.get("root_path") or "/",
    )
    return response


@router.delete(
    "/api/session",
    summary="Log out: clears the session cookie",
    description="With the session cookie, needs the X-CSRF-Token header like every "
    "state-changing request the cookie signs in (403 without).",
    status_code=204,
    responses=error_responses(403, 500),
)
async def logout(request: Request) -> Response:
    gw = request.app.state.gateway
    token = request.cookies.get(COOKIE)
    if token and gw.keys is not None:
        csrf.check_session_request(request, token, gw.auth.public_origins)
        await gw.keys.close_session(token)  # ended for every copy of the cookie
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path=request.scope.get("root_path") or "/")
    return response


# The API key routes (tagged as `router`'s): admins only (_keys), 409 while keys are off.
keys_router = APIRouter(prefix="/api/keys", responses=error_responses(401, 403, 409, 503))


def _keys(request: Request):
    gw = request.app.state.gateway
    gw.auth.require_admin(request)
    if gw.keys is None:
        raise ApiError(409, "auth_disabled", "API keys are off (GATEWAY_AUTH=disabled)")
    return gw.keys


@keys_router.get("", summary="List API keys (admin)", response_model=KeyList)
async def list_keys(request: Request) -> JSONResponse:
    keys = await _keys(request).list()
    return JSONResponse({"keys": [k.to_json() for k in keys]})


@keys_router.post(
    "",
    summary="Create an API key (admin); the key is shown once",
    status_code=201,
    response_model=CreatedKey,
    responses=error_responses(422),
)
async def create_key(
    request: Request, keys: Annotated[KeyStore, Depends(_keys)], body: NewKey
) -> JSONResponse:
    # `keys` is a dependency so a client key is refused (403) before its body is read.
    try:
        limits = Limits(**body.limits.model_dump())
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc), fields=["limits"]) from None
    secret, record = await keys.create(body.name, body.tenant, body.role, limits)
    return JSONResponse({"key": secret, "info": record.to_json()}, status_code=201)


@keys_router.delete(
    "/{key_id}",
    summary="Revoke an API key at once, on every gateway process (admin)",
    response_model=KeyInfo,
    responses=error_responses(404, 422),
)
async def revoke_key(key_id: str, request: Request) -> JSONResponse:
    if not re.fullmatch(r"[0-9a-f]{8}", key_id):
        raise ApiError(404, "not_found", f"no API key {key_id}")
    record = await _keys(request).revoke(key_id)
    if record is None:
        raise ApiError(404, "not_found", f"no API key {key_id}")
    return JSONResponse(record.to_json())


router.include_router(keys_router)
