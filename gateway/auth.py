"""Who is calling: the principal a request acts as (its tenant, role and limits).

Every request outside the open paths carries an API key - `Authorization:
Bearer <key>`, `X-API-Key: <key>`, or the console's session cookie (COOKIE) -
checked before any route runs (GatewayApp.__call__): a missing, unknown or
revoked key is 401, a key over its request rate 429 with Retry-After, and a
state-changing request signed in by the cookie but not provably the
console's is 403 (gateway/csrf.py). Routes
then ask `principal(request)` (whose data may this request see?) or
`require_admin(request)`. With GATEWAY_AUTH=disabled every request acts as an
admin of the default tenant, and the gateway warns at every start.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from starlette.requests import Request

from gateway import csrf
from gateway.errors import ApiError
from gateway.jobs import DEFAULT_TENANT
from gateway.keys import KeyStore, Limits

COOKIE = "percept_session"
_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="percept"'}

# KEYS: bucket. ARGV: now, rate (tokens/s), burst. Returns seconds to wait
# (as a string) before a token is free, "0" when one was taken.
_TAKE = """
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
if tokens < 1 then return tostring((1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'ts', now)
redis.call('EXPIRE', KEYS[1], math.min(math.ceil(burst / rate) + 60, 31536000))
return '0'
"""


@dataclass(frozen=True)
class Principal:
    tenant: str
    admin: bool
    name: str = ""
    key_id: str = ""
    limits: Limits = field(default_factory=Limits)

    @property
    def scope(self) -> str | None:
        """The tenant whose data this principal sees; None means every tenant."""
        return None if self.admin else self.tenant


ANONYMOUS_ADMIN = Principal(DEFAULT_TENANT, True, "auth disabled")


def presented_key(request: Request) -> str | None:
    """The API key in the request's headers (not the session cookie)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


class Auth:
    """Authentication and per-key request rates (shared through Redis)."""

    def __init__(
        self,
        keys: KeyStore | None,
        *,
        docs_public: bool,
        metrics_public: bool,
        public_origins: tuple[str, ...] = (),
    ) -> None:
        self.keys = keys  # None: auth disabled
        self.docs_public = docs_public
        self.metrics_public = metrics_public
        self.public_origins = public_origins  # GATEWAY_PUBLIC_ORIGIN, for the CSRF checks
        self._take = keys.redis.register_script(_TAKE) if keys else None

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def is_open(self, path: str) -> bool:
        """Paths anyone may fetch (the rest need a key)."""
        if path in ("/healthz", "/readyz", "/", "/api/session") or path.startswith("/console"):
            return True
        if path.startswith("/docs/assets/"):  # Swagger UI's and ReDoc's own files
            return True
        if path in ("/docs", "/redoc", "/openapi.json"):
            return self.docs_public
        if path == "/metrics":
            return self.metrics_public
        return False

    async def authenticate(self, request: Request) -> Principal:
        """The caller's principal; ApiError 401 (no valid key) or 429 (rate)."""
        key = presented_key(request)
        unsafe = request.method not in csrf.SAFE_METHODS
        if self.keys is None:
            if unsafe and key is None:  # no key at all: still no other page's forms
                csrf.check_origin(request, self.public_origins)
            return ANONYMOUS_ADMIN
        session = None if key is not None else request.cookies.get(COOKIE)
        if session and unsafe:
            csrf.check_session_request(request, session, self.public_origins)
        if key is None and not session:
            raise ApiError(
                401,
                "unauthorized",
                "missing API key: send `Authorization: Bearer <key>` (or `X-API-Key: <key>`)",
                headers=_UNAUTHORIZED,
            )
        if key is not None:
            record = await self.keys.lookup(key)
            refusal = "the API key is unknown or revoked"
        else:
            record = await self.keys.session(session)
            refusal = (
                "the session has ended (signed out, expired, or its key revoked): sign in again"
            )
        if record is None:
            raise ApiError(401, "unauthorized", refusal, headers=_UNAUTHORIZED)
        principal = Principal(record.tenant, record.admin, record.name, record.id, record.limits)
        if record.limits.rps > 0:
            await self._rate(principal)
        return principal

    async def _rate(self, principal: Principal) -> None:
        limits = principal.limits
        burst = limits.burst or max(1, math.ceil(2 * limits.rps))
        wait = float(
            await self._take(
                keys=[self.keys.names.bucket(principal.key_id)],
                args=[repr(time.time()), repr(limits.rps), burst],
            )
        )
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"API key {principal.key_id} is over its request rate of {limits.rps:g}/s "
                f"(burst {burst}); retry after the Retry-After seconds",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    def principal(self, request: Request) -> Principal:
        state = request.scope.get("state") or {}
        principal = state.get("principal")
        if principal is not None:
            return principal
        if self.keys is None:
            return ANONYMOUS_ADMIN
        raise ApiError(401, "unauthorized", "missing API key", headers=_UNAUTHORIZED)

    def require_admin(self, request: Request) -> Principal:
        principal = self.principal(request)
        if not principal.admin:
            raise ApiError(403, "forbidden", "this needs an admin key")
        return principal
