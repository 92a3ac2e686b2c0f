"""Ordered, bounded pipelining for streams of frames.

Frames are handed to the model as they arrive, up to `window` at once so every
worker stays busy, and results leave in input order. When the consumer stops
(the client cancelled, or an error), everything still queued is cancelled, so
a cancelled stream costs at most `window` frames of extra work.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


async def ordered_map(
    source: AsyncIterator[T],
    fn: Callable[[T], Awaitable[R]],
    window: int,
) -> AsyncIterator[R]:
    """Yield fn(item) for each item of source, in order, with <= window in flight."""
    queue: asyncio.Queue = asyncio.Queue(maxsize=max(1, window))

    async def produce() -> None:
        try:
            async for item in source:
                await queue.put(asyncio.ensure_future(fn(item)))
        except Exception as exc:  # hand the failure to the consumer, in order
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(exc)
            await queue.put(fut)
            return
        await queue.put(_DONE)

    producer = asyncio.ensure_future(produce())
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            yield await item
    finally:
        producer.cancel()
        with contextlib.suppress(BaseException):
            await producer
        while not queue.empty():
            item = queue.get_nowait()
            if item is not _DONE:
                item.cancel()
                with contextlib.suppress(BaseException):
                    await item


async def iterate_in_thread(
    items: Iterable[T], close: Callable[[], None] | None = None
) -> AsyncIterator[T]:
    """Iterate a blocking iterable (a video decoder) without blocking the loop.

    When iteration ends early (the consumer stopped), the iterator and then
    `close` are called in a thread once the step in progress has finished.
    """
    loop = asyncio.get_running_loop()
    it = iter(items)
    lock = threading.Lock()

    def step():
        with lock:
            return next(it, _DONE)

    def finish() -> None:
        with lock:
            if hasattr(it, "close"):
                it.close()
            if close is not None:
                close()

    try:
        while True:
            item = await loop.run_in_executor(None, step)
            if item is _DONE:
                return
            yield item
    finally:
        loop.run_in_executor(None, finish)
