"""Who is calling: the principal a request acts as (its tenant and role).

Until API keys exist every request acts as the default tenant with the admin
role (auth disabled)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from gateway.jobs import DEFAULT_TENANT


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
