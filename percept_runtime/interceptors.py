"""The server interceptor: request ids, logging, metrics and error mapping.

Every call gets a request id (the client's `x-request-id` metadata, or a new
one), returned in the trailing metadata and carried by every log line. Domain
errors become their status code with their message; anything unexpected
becomes INTERNAL with a generic message, and the traceback goes to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

import grpc

from percept_runtime.errors import PerceptError
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
        self.failed = 0
        self.seconds = 0.0

    @property
    def mean_seconds(self) -> float:
        ended = self.served + self.failed
        return self.seconds / ended if ended else 0.0


STATS = CallStats()
UNOBSERVED_PREFIXES = ("/grpc.", "/percept.common.v1.ReplicaService/")


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
        else:
            STATS.failed += 1

    async def fail(self, exc: BaseException) -> None:
        """Turn an exception into the call's status; always raises."""
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self.code = grpc.StatusCode.CANCELLED
            logger.info("%s cancelled", self.method)
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


def _wrap_unary_response(method: str, behavior: Callable, replica: Callable[[], str]) -> Callable:
    async def wrapper(request_or_iterator, context):
        call = _Call(method, context, replica())
        try:
            return await behavior(request_or_iterator, context)
        except BaseException as exc:  # noqa: BLE001 - the error boundary
            await call.fail(exc)
        finally:
            call.finish()

    return wrapper


def _wrap_stream_response(method: str, behavior: Callable, replica: Callable[[], str]) -> Callable:
    async def wrapper(request_or_iterator, context):
        call = _Call(method, context, replica())
        responses = behavior(request_or_iterator, context)

        def on_done(_context) -> None:
            # A cancelled stream may leave this generator suspended at `yield`;
            # close the handler now so its work (queued frames, the decoder)
            # stops at once instead of whenever it is garbage-collected.
            if not call.finished:
                call.code = grpc.StatusCode.CANCELLED
                call.finish()
                asyncio.ensure_future(_close(responses))

        context.add_done_callback(on_done)
        try:
            async for response in responses:
                yield response
        except BaseException as exc:  # noqa: BLE001 - the error boundary
            await call.fail(exc)
        finally:
            call.finish()

    return wrapper


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every RPC handler with _Call; health and reflection pass through.

    `replica` is how this server names itself to clients: every response's
    trailing metadata carries it as `x-percept-replica`, so a caller behind a
    load balancer knows which replica served it."""

    def __init__(self, replica: str = "") -> None:
        self.replica = replica

    def _replica(self) -> str:
        return self.replica

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(UNOBSERVED_PREFIXES):
            return handler
        if handler.response_streaming:
            wrap = _wrap_stream_response
            if handler.request_streaming:
                return handler._replace(
                    stream_stream=wrap(method, handler.stream_stream, self._replica)
                )
            return handler._replace(unary_stream=wrap(method, handler.unary_stream, self._replica))
        wrap = _wrap_unary_response
        if handler.request_streaming:
            return handler._replace(stream_unary=wrap(method, handler.stream_unary, self._replica))
        return handler._replace(unary_unary=wrap(method, handler.unary_unary, self._replica))
