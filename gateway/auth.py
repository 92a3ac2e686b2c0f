"""Who is calling: the principal a request acts as (its tenant and role).

Until API keys exist every request acts as the default tenant with the admin
role (auth disabled). Routes ask `principal(request)` (whose data may this
request see?) or `require_admin(request)` (operator-only routes: the console's
APIs). A key arrives as `Authorization: Bearer <key>`, `X-API-Key: <key>`, or
the console's session cookie (COOKIE)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from gateway.errors import ApiError
from gateway.jobs import DEFAULT_TENANT

COOKIE = "percept_session"


@dataclass(frozen=True)
class Principal:
    tenant: str
    admin: bool
    name: str = ""

    @property
    def scope(self) -> str | None:
        """The tenant whose data this principal sees; None means every tenant."""
        return None if self.admin else self.tenant


ANONYMOUS_ADMIN = Principal(DEFAULT_TENANT, True, "auth disabled")


class Auth:
    def principal(self, request: Request) -> Principal:
        return ANONYMOUS_ADMIN

    def require_admin(self, request: Request) -> Principal:
        principal = self.principal(request)
        if not principal.admin:
            raise ApiError(403, "forbidden", "this needs an admin key")
        return principal
