"""create_app(): the FastAPI application, its lifespan and error handlers."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.backends import Backends
from gateway.dispatcher import Dispatcher
from gateway.errors import error_response
from gateway.jobs import JobStore
from gateway.metrics import HTTP_LATENCY, HTTP_REQUESTS
from gateway.routes import detect, ops, tasks
from gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)


class ObserveMiddleware:
    """Request count and latency by route template (plain ASGI: Starlette's
    BaseHTTPMiddleware adds a task and a stream per request)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_and_record(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            HTTP_LATENCY.labels(path).observe(time.perf_counter() - start)
            HTTP_REQUESTS.labels(path, scope["method"], str(status[0])).inc()


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = JobStore.from_url(settings.redis_url, settings.task_ttl_s, settings.tombstone_ttl_s)
        await store.ensure_groups()
        backends = Backends(settings)
        app.state.settings, app.state.store, app.state.backends = settings, store, backends
        dispatcher = Dispatcher(store, backends, settings) if settings.dispatchers else None
        if dispatcher:
            await dispatcher.start()
        logger.info(
            "gateway ready: face %s, object %s", settings.face_targets, settings.object_targets
        )
        try:
            yield
        finally:
            if dispatcher:
                await dispatcher.stop()
            await backends.close()
            await store.close()

    app = FastAPI(
        title="Percept",
        summary="Face and object detection: upload, get a task id, poll or stream the result.",
        version="1.0",
        lifespan=lifespan,
    )
    app.include_router(detect.router)
    app.include_router(tasks.router)
    app.include_router(ops.router)

    app.add_middleware(ObserveMiddleware)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        problems = [
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
            for e in exc.errors()
        ]
        fields = [".".join(str(p) for p in e["loc"][1:]) for e in exc.errors()]
        return error_response(422, "invalid_request", "; ".join(problems), fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal error; see the gateway log")

    return app
