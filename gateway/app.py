"""create_app(): the FastAPI application, its lifespan and error handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Union

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, create_model
from redis.exceptions import ResponseError as RedisResponseError
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gateway import console, declare, docs, models, protoform
from gateway.auth import Auth
from gateway.backends import Backends
from gateway.declare import TaskKind, backends_of
from gateway.dispatcher import Dispatcher
from gateway.errors import HTTP_ERRORS, STORE_DOWN, ApiError, error_response, response_for
from gateway.inflight import UploadBudget
from gateway.jobs import JobStore
from gateway.keys import KeyStore
from gateway.metrics import HTTP_LATENCY, HTTP_REQUESTS
from gateway.replicas import ReplicaMonitor
from gateway.routes import admin, collections, ops, sources, submit, tasks
from gateway.routes import events as event_routes
from gateway.routes import webhooks as webhook_routes
from gateway.runner import TaskRunner
from gateway.settings import GatewaySettings
from gateway.signin import SignInThrottle
from gateway.sources import SourceStore
from gateway.submit import Submitter
from gateway.upload import MULTIPART_OVERHEAD
from percept_runtime.heap import release_heap_every

logger = logging.getLogger(__name__)


@dataclass
class Gateway:
    """Everything a route needs, built once in the lifespan."""

    settings: GatewaySettings
    kinds: tuple[TaskKind, ...]
    store: JobStore
    backends: Backends
    runner: TaskRunner
    submitter: Submitter
    auth: Auth
    keys: KeyStore | None = None
    dispatcher: Dispatcher | None = None
    replicas: ReplicaMonitor | None = None
    signin: SignInThrottle | None = None  # None: auth disabled
    uploads: UploadBudget | None = None
    sources: SourceStore | None = None
    deliverer: Any = None  # gateway.webhooks_delivery.Deliverer, with the dispatchers


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


class GatewayApp(FastAPI):
    """FastAPI, with authentication and the submit routes at the ASGI entry:
    every request but the open paths is authenticated first (401/429 answered
    here), and the hot path (submits) skips the middleware stack and routing
    (the FastAPI routes stay registered for the documentation and answer
    identically)."""

    fast: dict[str, Any]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            path = get_route_path(scope)
            gw = getattr(self.state, "gateway", None)
            if gw is not None and not gw.auth.is_open(path):
                try:
                    principal = await gw.auth.authenticate(Request(scope, receive))
                except Exception as exc:  # noqa: BLE001 - 401/429/503, answered here
                    response = response_for(exc, f"{scope['method']} {path}")
                    if response.status_code == 401 and docs.wants_page(path, scope):
                        response = docs.sign_in_page(getattr(exc, "message", ""))
                    await response(scope, receive, send)
                    HTTP_REQUESTS.labels(
                        "unauthenticated", scope["method"], str(response.status_code)
                    ).inc()
                    return
                scope.setdefault("state", {})["principal"] = principal
            if (
                gw is not None
                and gw.uploads
                and scope["method"] == "POST"
                and self._uploads_to(path)
            ):
                await gw.uploads.serve(scope, receive, send, self._upload)  # bytes bounded
                return
            if scope["method"] == "POST":
                handler = self.fast.get(path)
                if handler is not None:
                    scope["app"] = self
                    await handler(scope, receive, send)
                    return
            if scope["method"] in ("POST", "PUT", "PATCH") and not self._uploads_to(path):
                too_big = _declared_too_big(scope)
                if too_big is not None:
                    await too_big(scope, receive, send)
                    return
                receive = _bounded(receive)
        await super().__call__(scope, receive, send)

    def _uploads_to(self, path: str) -> bool:
        """An upload route: a kind's (declared anywhere), enroll or verify."""
        return path in self.fast or _UPLOAD_ROUTE.match(path) is not None

    async def _upload(self, scope, receive, send) -> None:
        handler = self.fast.get(get_route_path(scope))
        if handler is not None:
            scope["app"] = self
            await handler(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


# Every body but an upload's (collections, searches, keys, sign-in) is small:
# past this it is refused, whatever its Content-Type says. The upload routes
# (task submits, enroll, verify) bound theirs with the upload limits.
MAX_JSON_BODY = 1 << 20
_JSON_TOO_BIG = f"the body is over {MAX_JSON_BODY} bytes, the limit for JSON bodies"
_UPLOAD_ROUTE = re.compile(r"^/api/(detect|identify)/|^/api/collections/[^/]+/(faces|verify)$")


def _declared_too_big(scope):
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > MAX_JSON_BODY:
            return error_response(413, "too_large", _JSON_TOO_BIG)
    return None


def _bounded(receive):
    """`receive`, refusing a body (chunked, say) that grows past MAX_JSON_BODY."""
    seen = 0

    async def bounded():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_JSON_BODY:
                raise StarletteHTTPException(413, _JSON_TOO_BIG)
        return message

    return bounded


def _query_once_each(request: Request) -> None:
    """Every route: a query parameter given twice is 422 naming it (FastAPI
    would silently keep one of the values)."""
    protoform.options_of(request.query_params.multi_items(), {})


def _refuse_taken_routes(app: FastAPI, kinds: tuple[TaskKind, ...], submits) -> None:
    """ValueError when a kind's route is one the gateway answers POST on itself
    (the kind's fast path would take its requests over, silently)."""
    own = {route.endpoint for route in submits.routes}
    others = [r for r in _routes(app.routes) if getattr(r, "endpoint", None) not in own]
    for kind in kinds:
        scope = {"type": "http", "method": "POST", "path": kind.path, "root_path": ""}
        taken = next((r for r in others if r.matches(scope)[0] == Match.FULL), None)
        if taken is not None:
            path = getattr(taken, "path", kind.path)
            raise ValueError(f"kind {kind.id}: POST {path} is the gateway's own route")


def _routes(routes):
    """Every route, those of included routers too."""
    for route in routes:
        inner = getattr(getattr(route, "original_router", None), "routes", None)
        if inner is None:
            yield route
        else:
            yield from _routes(inner)


def fast_route(path: str, handler):
    """An ASGI app running a submit handler, with the same error answers and
    metrics as the full stack."""

    async def app(scope, receive, send) -> None:
        start = time.perf_counter()
        try:
            response = await handler(Request(scope, receive))
        except Exception as exc:  # noqa: BLE001 - the error boundary of the hot path
            response = response_for(exc, f"POST {path}")
        await response(scope, receive, send)
        HTTP_LATENCY.labels(path).observe(time.perf_counter() - start)
        HTTP_REQUESTS.labels(path, "POST", str(response.status_code)).inc()

    return app


def task_model(kinds: tuple[TaskKind, ...]) -> type[models.Task]:
    """The Task body with `result` typed as any of the kinds' results."""
    results: list[Any] = []
    for kind in kinds:
        if kind.result_model not in results:
            results.append(kind.result_model)
    return create_model(
        "Task",
        __base__=models.Task,
        result=(
            Union[tuple(results)] | None,  # noqa: UP007 - a Union built from a list
            Field(None, description="When succeeded: the kind's result."),
        ),
    )


def create_app(
    settings: GatewaySettings | None = None, kinds: tuple[TaskKind, ...] | None = None
) -> FastAPI:
    settings = settings or GatewaySettings()
    declare.load(settings.declarations)
    kinds = tuple(kinds or declare.kinds())
    for backend in {*declare.backends(), *backends_of(kinds)}:
        settings.backend(backend)  # a wrong GATEWAY_{NAME}_* stops the start, naming it
    model = task_model(kinds)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = JobStore.from_settings(settings, (k.id for k in kinds))
        with contextlib.suppress(*STORE_DOWN):
            await store.ensure_groups()  # API-only processes are ready without a dispatcher
        backends = Backends(settings)
        runner = TaskRunner(store, backends)
        keys = KeyStore(store.redis) if settings.auth == "enabled" else None
        auth = Auth(
            keys,
            docs_public=settings.docs_public,
            metrics_public=settings.metrics_public,
            public_origins=settings.public_origins,
        )
        if keys is None:
            logger.warning(
                "GATEWAY_AUTH=disabled: every caller is an admin of every tenant; "
                "never expose this gateway beyond a trusted network"
            )
        gw = Gateway(
            settings, kinds, store, backends, runner, Submitter(store, backends, runner, settings),
            auth, keys,
        )  # fmt: skip
        if keys is not None:
            gw.signin = SignInThrottle(
                store.redis, settings.login_failures, settings.login_window_s
            )
        gw.uploads = UploadBudget(
            settings.max_inflight_upload_bytes, settings.upload_wait_s,
            settings.upload_small_bytes,
            max(settings.max_image_bytes, settings.max_video_bytes) + MULTIPART_OVERHEAD,
        )  # fmt: skip
        gw.sources = SourceStore(store.redis)
        app.state.gateway = gw
        listeners = [
            asyncio.create_task(runner.listen_for_cancels(), name="cancel-listener"),
            # a burst of big uploads leaves malloc holding its peak: given back
            asyncio.create_task(release_heap_every(), name="heap-release"),
        ]
        if keys is not None:
            listeners.append(asyncio.create_task(keys.listen_for_changes(), name="key-changes"))
        if settings.dispatchers:
            gw.dispatcher = Dispatcher(store, backends, settings, kinds, runner)
            await gw.dispatcher.start()
            if settings.webhook_delivery:
                from gateway.webhooks_delivery import Deliverer

                gw.deliverer = Deliverer(store.redis, settings)
                await gw.deliverer.start()
        if settings.replica_monitor:
            gw.replicas = ReplicaMonitor(store.redis, settings, backends_of(kinds))
            await gw.replicas.start()
        logger.info(
            "gateway ready: %d task kinds; %s",
            len(kinds),
            ", ".join(f"{b.name} {settings.backend(b).targets}" for b in backends_of(kinds)),
        )
        try:
            yield
        finally:
            if gw.replicas:
                await gw.replicas.stop()
            if gw.dispatcher:
                await gw.dispatcher.stop()
            if gw.deliverer:
                await gw.deliverer.stop()
            await gw.submitter.close()
            for listener in listeners:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            await backends.close()
            await store.close()

    app = GatewayApp(
        title="Percept",
        summary="Face and object detection: upload, get a task id, poll or stream the result.",
        version="1.0",
        lifespan=lifespan,
        docs_url=None,  # gateway/docs.py serves them, with no CDN
        redoc_url=None,
        dependencies=[Depends(_query_once_each)],
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            models.document_access(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi
    submits = submit.router_for(kinds, model)
    app.include_router(submits)
    app.fast = {k.path: fast_route(k.path, submit.make_handler(k)) for k in kinds}
    app.include_router(tasks.router_for(kinds, model))
    app.include_router(ops.router)
    app.include_router(admin.router)
    app.include_router(collections.router)
    app.include_router(sources.router)
    app.include_router(event_routes.router)
    app.include_router(webhook_routes.router)
    console.install(app)
    docs.install(app)
    _refuse_taken_routes(app, kinds, submits)
    app.add_middleware(ObserveMiddleware)

    async def handled(request: Request, exc: Exception):
        return response_for(exc, f"{request.method} {request.url.path}")

    for cls in (ApiError, *HTTP_ERRORS, *STORE_DOWN, RedisResponseError, Exception):
        app.add_exception_handler(cls, handled)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        bad_json = next((e for e in errors if e["type"] == "json_invalid"), None)
        if bad_json is not None:
            why = (bad_json.get("ctx") or {}).get("error", "JSON decode error")
            at = bad_json["loc"][1] if len(bad_json["loc"]) > 1 else 0
            return error_response(
                400, "invalid_request", f"the body is not valid JSON ({why}, at character {at})"
            )
        if any(tuple(e["loc"]) == ("body",) for e in errors):
            content_type = request.headers.get("content-type") or "no content type"
            if "json" not in content_type.split(";")[0]:
                return error_response(
                    415,
                    "unsupported_media_type",
                    f"send a JSON object as application/json (got {content_type})",
                )
            return error_response(
                422, "invalid_request", "the body must be a JSON object", fields=["body"]
            )
        problems = [
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in errors
        ]
        fields = [".".join(str(p) for p in e["loc"][1:]) for e in errors]
        return error_response(422, "invalid_request", "; ".join(problems), fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        code = "too_large" if exc.status_code == 413 else "http_error"
        return error_response(exc.status_code, code, str(exc.detail))

    return app
