"""FastAPI dependencies: the app's single instances, built in create_app's lifespan.

They are async on purpose: FastAPI runs sync dependencies in a thread pool,
which cost the submit path a thread hop per dependency.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.backends import Backends
from gateway.jobs import JobStore
from gateway.settings import GatewaySettings


async def _store(request: Request) -> JobStore:
    return request.app.state.store


async def _backends(request: Request) -> Backends:
    return request.app.state.backends


async def _settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


StoreDep = Annotated[JobStore, Depends(_store)]
BackendsDep = Annotated[Backends, Depends(_backends)]
SettingsDep = Annotated[GatewaySettings, Depends(_settings)]
