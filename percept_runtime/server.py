"""The gRPC server bootstrap every Percept service runs.

Order of events:
1. listen, with health NOT_SERVING (so probes answer while the model loads);
2. load and warm the model (`startup`), then health SERVING;
3. on SIGTERM/SIGINT: health NOT_SERVING, wait `drain_delay_s` so load
   balancers notice, stop taking calls and let in-flight ones finish within
   `grace_period_s`, then `shutdown` (stop the workers).

Between 2 and 3, a service whose work needs something outside the process (a
database) reports it through an `Availability`: while a dependency is down,
health says NOT_SERVING (calls go to other replicas), and SERVING again once
it is back.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from percept.common.v1 import replica_service_pb2_grpc

from percept_runtime.interceptors import ObservabilityInterceptor
from percept_runtime.metrics import serve_metrics
from percept_runtime.process import stop_on_signals
from percept_runtime.replica import SERVICE_NAME as REPLICA_SERVICE
from percept_runtime.replica import Description, ReplicaServicer
from percept_runtime.settings import ServerSettings

logger = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class GrpcService:
    """A servicer to mount: its full name and the generated add_*_to_server call."""

    name: str
    register: Callable[[grpc.aio.Server], None]


class Availability:
    """Whether the dependencies a service needs (a database...) are reachable.

    `set(name, up)` may be called from any thread; `serve()` turns every change
    into the health status (NOT_SERVING while any dependency is down, once the
    server has started). A dependency never set counts as up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down: set[str] = set()
        self._listener: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def ok(self) -> bool:
        return not self._down

    @property
    def down(self) -> list[str]:
        return sorted(self._down)

    def set(self, dependency: str, up: bool) -> None:
        with self._lock:
            changed = (dependency in self._down) == up
            if up:
                self._down.discard(dependency)
            else:
                self._down.add(dependency)
            listener, loop = self._listener, self._loop
        if not changed or listener is None or loop is None:
            return
        logger.warning(
            "%s is %s", dependency, "back: SERVING" if up else "unreachable: NOT_SERVING"
        )
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            listener()
        else:
            loop.call_soon_threadsafe(listener)

    def _attach(self, loop: asyncio.AbstractEventLoop, listener: Callable[[], None]) -> None:
        with self._lock:
            self._loop, self._listener = loop, listener


def run(main: Awaitable[None]) -> None:
    """Run a server's main coroutine on uvloop when it is installed (less CPU
    per call than the default loop), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    """TLS from the settings' PEM files (mutual when a client CA is set), or None."""
    if not settings.tls_cert:
        return None
    client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    if settings.max_connection_age_s:
        options += [
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace_s * 1000)),
        ]
    return options


async def serve(
    settings: ServerSettings,
    services: list[GrpcService],
    startup: Callable[[], Awaitable[None]],
    shutdown: Callable[[], Awaitable[None]],
    describe: Callable[[], Description],
    stop: asyncio.Event | None = None,
    availability: Availability | None = None,
) -> None:
    """Run a server until SIGTERM/SIGINT (or `stop` is set), then drain it.
    `describe` tells monitors what the replica runs (ReplicaService);
    `availability`, when given, holds health at NOT_SERVING while a dependency
    is down."""
    interceptor = ObservabilityInterceptor(token=settings.auth_token)
    server = grpc.aio.server(interceptors=[interceptor], options=server_options(settings))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in services:
        service.register(server)
    names = [s.name for s in services]
    serving = [False]
    replica_service_pb2_grpc.add_ReplicaServiceServicer_to_server(
        ReplicaServicer(lambda: interceptor.replica, names, describe, lambda: serving[0]), server
    )
    reflection.enable_server_reflection(
        [*names, REPLICA_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    address = f"{settings.host}:{settings.port}"
    credentials = server_credentials(settings)
    port = (
        server.add_secure_port(address, credentials)
        if credentials
        else server.add_insecure_port(address)
    )
    interceptor.replica = settings.replica_name or f"{socket.gethostname()}:{port}"
    for name in ("", *names):
        await health_servicer.set(name, NOT_SERVING)
    await server.start()
    health_only = None
    if settings.health_port:
        # Probes that cannot speak TLS (Kubernetes' gRPC probes) ask this port:
        # plaintext, health only, the same status.
        health_only = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_only)
        health_only.add_insecure_port(f"{settings.host}:{settings.health_port}")
        await health_only.start()
    serve_metrics(settings.metrics_port)
    logger.info(
        "listening on %s:%d (%s%s; metrics port %s); loading the model",
        settings.host,
        port,
        "mutual TLS" if settings.tls_client_ca else "TLS" if credentials else "plaintext",
        ", token required" if settings.auth_token else "",
        settings.metrics_port or "off",
    )

    stop = stop_on_signals(stop)
    loop = asyncio.get_running_loop()

    started = [False]
    health_updates: set[asyncio.Task] = set()

    async def report_health() -> None:
        if not started[0] or stop.is_set():
            return  # before start-up, and once draining, health is NOT_SERVING anyway
        ok = availability is None or availability.ok
        for name in ("", *names):
            await health_servicer.set(name, SERVING if ok else NOT_SERVING)
        serving[0] = ok

    def on_availability() -> None:
        update = asyncio.ensure_future(report_health())
        health_updates.add(update)
        update.add_done_callback(health_updates.discard)

    if availability is not None:
        availability._attach(loop, on_availability)

    startup_task = asyncio.ensure_future(startup())
    stop_task = asyncio.ensure_future(stop.wait())
    await asyncio.wait({startup_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    try:
        if startup_task.done():
            startup_task.result()  # a failed load ends the process: never half-working
            started[0] = True
            await report_health()
            if serving[0]:
                logger.info("SERVING %s on port %d", ", ".join(names), port)
            else:
                logger.warning(
                    "started on port %d, but NOT_SERVING while %s is unreachable",
                    port,
                    ", ".join(availability.down),
                )
            await stop_task
        logger.info(
            "draining: NOT_SERVING, %.1fs delay, %.1fs grace",
            settings.drain_delay_s,
            settings.grace_period_s,
        )
        serving[0] = False
        await health_servicer.enter_graceful_shutdown()
        await asyncio.sleep(settings.drain_delay_s)
        await server.stop(settings.grace_period_s)
    finally:
        startup_task.cancel()
        stop_task.cancel()
        await server.stop(0)
        if health_only is not None:
            await health_only.stop(0)
        await shutdown()
        logger.info("stopped")
