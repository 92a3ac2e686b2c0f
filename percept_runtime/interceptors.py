"""The server interceptor: request ids, logging, metrics and error mapping.

Every call gets a request id (the client's `x-request-id` metadata, or a new
one), returned in the trailing metadata and carried by every log line. Domain
errors become their status code with their message; anything unexpected
becomes INTERNAL with a generic message, and the traceback goes to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable

import grpc

from percept_runtime.errors import InvalidInput, PerceptError
from percept_runtime.logs import REQUEST_ID
from percept_runtime.metrics import IN_FLIGHT, LATENCY, REQUESTS
from percept_runtime.status import status_for

logger = logging.getLogger(__name__)


def _request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and value:
            return str(value)[:128]
    return uuid.uuid4().hex


class CallStats:
    """Totals over the model services' calls since start (for GetReplicaInfo)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.served = 0
        self.failed = 0  # the replica's fault
        self.refused = 0  # the caller's mistake, or the caller gave up
        self.seconds = 0.0

    @property
    def mean_seconds(self) -> float:
        ended = self.served + self.failed + self.refused
        return self.seconds / ended if ended else 0.0


# Statuses that say the call was wrong (or abandoned by its caller), not the replica.
CALLERS_STATUSES = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.CANCELLED,
})  # fmt: skip


STATS = CallStats()
UNOBSERVED_PREFIXES = ("/grpc.", "/percept.common.v1.ReplicaService/")
HEALTH_PREFIX = "/grpc.health.v1.Health/"
TOKEN_MESSAGE = "missing or wrong token: send the metadata `authorization: Bearer <token>`"


class _Call:
    """Bookkeeping for one call: metrics, request id, and the error boundary."""

    def __init__(self, method: str, context: grpc.aio.ServicerContext, replica: str) -> None:
        self.method = method
        self.context = context
        self.rid = _request_id(context)
        self.code = grpc.StatusCode.OK
        self.start = time.perf_counter()
        self.finished = False
        REQUEST_ID.set(self.rid)  # the handler runs in its own task context
        IN_FLIGHT.labels(method).inc()
        STATS.in_flight += 1
        context.set_trailing_metadata((("x-request-id", self.rid), ("x-percept-replica", replica)))

    def finish(self) -> None:
        """Record the call once, however it ended."""
        if self.finished:
            return
        self.finished = True
        seconds = time.perf_counter() - self.start
        IN_FLIGHT.labels(self.method).dec()
        LATENCY.labels(self.method).observe(seconds)
        REQUESTS.labels(self.method, self.code.name).inc()
        STATS.in_flight -= 1
        STATS.seconds += seconds
        if self.code == grpc.StatusCode.OK:
            STATS.served += 1
        elif self.code in CALLERS_STATUSES:
            STATS.refused += 1
        else:
            STATS.failed += 1

    def cancelled_code(self) -> grpc.StatusCode:
        """Why a call was cut short: its deadline ran out (counted against the
        replica), or its caller went away."""
        left = self.context.time_remaining()
        if left is not None and left <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED

    async def __aenter__(self) -> _Call:
        return self

    async def __aexit__(self, kind, exc: BaseException | None, traceback) -> None:
        """The error boundary around a handler: what it raised becomes the
        call's status (`fail`), and the call is recorded however it ended."""
        try:
            if exc is not None:
                await self.fail(exc)
        finally:
            self.finish()

    async def fail(self, exc: BaseException) -> None:
        """Turn an exception into the call's status; always raises."""
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self.code = self.cancelled_code()
            logger.info("%s %s", self.method, self.code.name.lower())
            raise exc
        if isinstance(exc, grpc.aio.AbortError):
            self.code = self.context.code() or grpc.StatusCode.UNKNOWN
            raise exc
        self.code = status_for(exc)
        if isinstance(exc, PerceptError):
            logger.info("%s -> %s: %s", self.method, self.code.name, exc.message)
            await self.context.abort(self.code, exc.message)
        logger.error("%s failed", self.method, exc_info=exc)
        await self.context.abort(self.code, f"internal error (request id {self.rid})")


async def _close(responses) -> None:
    with contextlib.suppress(RuntimeError):  # already running: cancellation finishes it
        await responses.aclose()


def _decoder(deserialize: Callable | None, streaming: bool) -> Callable:
    """The request (or, for a streaming request, each message of its iterator)
    as bytes -> message; bytes that do not parse are the caller's mistake
    (INVALID_ARGUMENT), not the server's (UNKNOWN)."""
    if deserialize is None:
        return lambda request: request
    message = getattr(getattr(deserialize, "__self__", None), "DESCRIPTOR", None)
    name = message.full_name if message is not None else "request"

    def decode(raw):
        try:
            return deserialize(raw)
        except Exception:  # noqa: BLE001 - any parse failure means the same to the caller
            raise InvalidInput(
                f"the request is not a valid {name} message ({len(raw)} bytes that do not "
                "parse as protobuf): send the serialized message the .proto describes"
            ) from None

    async def decode_each(requests):
        async for raw in requests:
            yield decode(raw)

    return decode_each if streaming else decode


def _wrap_unary_response(
    method: str, behavior: Callable, replica: Callable[[], str], decode: Callable
) -> Callable:
    async def wrapper(request_or_iterator, context):
        async with _Call(method, context, replica()):
            return await behavior(decode(request_or_iterator), context)

    return wrapper


def _wrap_stream_response(
    method: str, behavior: Callable, replica: Callable[[], str], decode: Callable
) -> Callable:
    async def wrapper(request_or_iterator, context):
        async with _Call(method, context, replica()) as call:
            responses = behavior(decode(request_or_iterator), context)

            def on_done(_context) -> None:
                # A cancelled stream may leave this generator suspended at `yield`;
                # close the handler now so its work (queued frames, the decoder)
                # stops at once instead of whenever it is garbage-collected.
                if not call.finished:
                    call.code = call.cancelled_code()
                    call.finish()
                    asyncio.ensure_future(_close(responses))

            context.add_done_callback(on_done)
            async for response in responses:
                yield response

    return wrapper


def _refuse(streaming_response: bool, message: str) -> Callable:
    """A handler body that answers UNAUTHENTICATED, of either shape."""
    if streaming_response:

        async def refuse_stream(request, context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
            yield  # pragma: no cover - makes this an async generator

        return refuse_stream

    async def refuse(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return refuse


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every RPC handler with _Call; health and reflection pass through.

    `replica` is how this server names itself to clients: every response's
    trailing metadata carries it as `x-percept-replica`, so a caller behind a
    load balancer knows which replica served it. With a `token`, every call
    but health checks must carry `authorization: Bearer <token>`
    (UNAUTHENTICATED otherwise). Requests are decoded inside the error
    boundary, so garbage bytes are INVALID_ARGUMENT."""

    def __init__(self, replica: str = "", token: str = "") -> None:
        self.replica = replica
        self._expected = f"Bearer {token}".encode() if token else None

    def _replica(self) -> str:
        return self.replica

    def _authorized(self, handler_call_details) -> bool:
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(given, self._expected)
        return False

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(HEALTH_PREFIX):
            return handler
        kind = ("stream" if handler.request_streaming else "unary") + (
            "_stream" if handler.response_streaming else "_unary"
        )  # the handler field holding its behaviour
        if self._expected is not None and not self._authorized(handler_call_details):
            logger.info("%s refused: no valid token", method)
            refuse = _refuse(handler.response_streaming, TOKEN_MESSAGE)
            return handler._replace(**{kind: refuse})
        if method.startswith(UNOBSERVED_PREFIXES):
            return handler
        decode = _decoder(handler.request_deserializer, handler.request_streaming)
        wrap = _wrap_stream_response if handler.response_streaming else _wrap_unary_response
        body = getattr(handler, kind)
        return handler._replace(
            request_deserializer=None, **{kind: wrap(method, body, self._replica, decode)}
        )
