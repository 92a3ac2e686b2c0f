"""The upload bytes one gateway process holds at once, bounded.

A burst of big uploads would otherwise all be read at once: each sits in the
process (read, checked, serialized, sent on) while the others arrive, and 40
uploads of 16 MiB took the process past 2 GiB. Every upload route reserves its
body's size from this budget before its body is read (its Content-Length; a
chunked body reserves as it reads) and gives it back when its answer is sent,
whatever happens (success, error, the client gone, the request cancelled).

When the budget is full a big upload waits its turn (first come, first served)
for up to `wait_s`, then gets 503 `uploads_busy` with Retry-After. A small one
(under `small` bytes) never waits: it is counted, and admitted at once, so a
small request is never stuck behind big ones. One reservation is never larger
than the whole budget, so an upload within the per-upload limit (which the
settings keep within the budget) is always admitted once the others are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from prometheus_client import Counter, Gauge

from gateway.errors import ApiError, error_response

logger = logging.getLogger(__name__)

UPLOAD_BYTES_INFLIGHT = Gauge(
    "percept_gateway_upload_bytes_inflight",
    "Upload bytes this gateway process holds now (reserved from "
    "GATEWAY_MAX_INFLIGHT_UPLOAD_BYTES: declared, or read so far when chunked).",
)
UPLOAD_BYTES_INFLIGHT_PEAK = Gauge(
    "percept_gateway_upload_bytes_inflight_peak",
    "The most upload bytes this gateway process has held at once since it started.",
)
UPLOADS_BUSY = Counter(
    "percept_gateway_uploads_busy_total",
    "Uploads refused 503 uploads_busy: the process' upload budget stayed full while they waited.",
)
CHUNKED_STEP = 1 << 20  # a chunked body reserves in steps of this many bytes
RETRY_AFTER_S = 2


class UploadBudget:
    """Bytes reserved by uploads in flight, at most `budget` (0: no bound)."""

    def __init__(self, budget: int, wait_s: float, small: int, largest: int) -> None:
        self.budget = budget
        self.wait_s = wait_s
        self.small = small
        self.largest = largest  # past this a body is refused unread (413): no reservation
        self.used = 0
        self.peak = 0
        self._waiters: deque[tuple[int, asyncio.Future]] = deque()

    # the accounting ----------------------------------------------------------------
    def _take(self, size: int) -> None:
        self.used += size
        self.peak = max(self.peak, self.used)
        UPLOAD_BYTES_INFLIGHT.set(self.used)
        UPLOAD_BYTES_INFLIGHT_PEAK.set(self.peak)

    def release(self, size: int) -> None:
        self.used -= size
        UPLOAD_BYTES_INFLIGHT.set(self.used)
        self._wake()

    def _wake(self) -> None:
        """Admit the waiters at the head of the line while they fit."""
        while self._waiters:
            size, future = self._waiters[0]
            if future.done():  # gave up: its entry is removed by itself
                self._waiters.popleft()
                continue
            if self.used + size > self.budget:
                return
            self._waiters.popleft()
            self._take(size)
            future.set_result(None)

    async def acquire(self, size: int, *, wait: bool = True) -> int:
        """Reserve `size` bytes (at most the whole budget; returns what was
        reserved). `wait=False` (a small upload): at once, even past the budget.
        Else at once when it fits and no one waits before it; otherwise in turn,
        for up to wait_s, then ApiError 503 `uploads_busy`."""
        if self.budget:
            size = min(size, self.budget)
        if size <= 0:
            return 0
        if not self.budget or not wait or (not self._waiters and self.used + size <= self.budget):
            self._take(size)
            return size
        future = asyncio.get_running_loop().create_future()
        entry = (size, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(self.wait_s):
                await asyncio.shield(future)
        except BaseException as exc:
            if future.done() and not future.cancelled():
                self.release(size)  # admitted just as it gave up
            else:
                future.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
                self._wake()  # a big one leaving the head may let smaller ones in
            if isinstance(exc, TimeoutError):
                UPLOADS_BUSY.inc()
                raise self.busy() from None
            raise
        return size

    def busy(self) -> ApiError:
        return ApiError(
            503,
            "uploads_busy",
            f"this gateway process is receiving {self.used} bytes of uploads, its budget "
            f"(GATEWAY_MAX_INFLIGHT_UPLOAD_BYTES={self.budget}), and no room came within "
            f"{self.wait_s:g} s; retry in a moment",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    # the ASGI side ---------------------------------------------------------------
    async def serve(self, scope, receive, send, app) -> None:
        """Run `app` (an upload route) on this request with its body's bytes
        reserved: all of its Content-Length before it runs, or, chunked, each
        step before it is read; all given back when it returns, however."""
        declared = _content_length(scope)
        if declared is not None and declared > self.largest:
            await app(scope, receive, send)  # the route refuses it (413) unread
            return
        held = 0
        try:
            if declared is not None:
                try:
                    held = await self.acquire(declared, wait=declared >= self.small)
                except ApiError as exc:
                    response = error_response(exc.status, exc.code, exc.message, exc.headers)
                    await response(scope, receive, send)
                    return
                await app(scope, receive, send)
                return
            seen = 0
            cap = min(self.largest, self.budget) if self.budget else self.largest

            async def counted():
                nonlocal seen, held
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > held:  # the next step, waited for as a big upload would
                        want = min(-(-seen // CHUNKED_STEP) * CHUNKED_STEP, cap)
                        if want > held:
                            held += await self.acquire(want - held, wait=seen >= self.small)
                return message

            await app(scope, counted, send)
        finally:
            if held:
                self.release(held)


def _content_length(scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None
