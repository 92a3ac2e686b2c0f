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

import numpy as np
from percept.common.v1 import video_pb2

from percept_runtime.errors import PerceptError
from percept_runtime.metrics import FRAMES
from percept_runtime.video import Frame, VideoPolicy, VideoReader

T = TypeVar("T")
R = TypeVar("R")
O = TypeVar("O")  # noqa: E741 - domain options type

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
                future = asyncio.ensure_future(fn(item))
                try:
                    await queue.put(future)
                except BaseException:  # stopped while waiting for room: nobody will await it
                    future.cancel()
                    raise
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


async def batched(items: AsyncIterator[T], size: int) -> AsyncIterator[list[T]]:
    """Group an async stream into lists of up to `size` (the last may be shorter)."""
    batch: list[T] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- the two streaming shapes every service has ---------------------------------


async def open_video(
    source, *, policy: VideoPolicy, frame_stride: int, max_frames: int
) -> VideoReader:
    """Open a percept.common.v1.VideoSource (inline bytes or uri) off the loop."""
    which = source.WhichOneof("source")
    return await asyncio.to_thread(
        VideoReader,
        content=source.content if which == "content" else None,
        uri=source.uri if which == "uri" else None,
        policy=policy,
        frame_stride=frame_stride,
        max_frames=max_frames,
    )


async def video_results(
    request,
    policy: VideoPolicy,
    infer: Callable[[list[np.ndarray]], Awaitable[list[R]]],
    *,
    window: int,
    batch_size: int = 1,
    method: str,
) -> AsyncIterator[tuple[Frame, R, int]]:
    """Open a video request's source (`video`, `frame_stride`, `max_frames`),
    decode frames in a thread and run `infer` on batches of them, `window`
    batches in flight; yield (frame, result, expected_frames) in frame order as
    each is done. The last frame carries the video's summary (summary_message)."""
    reader = await open_video(
        request.video,
        policy=policy,
        frame_stride=request.frame_stride,
        max_frames=request.max_frames,
    )
    expected = reader.expected_frames
    frames_metric = FRAMES.labels(method)

    async def run(batch: list[Frame]) -> list[tuple[Frame, R]]:
        results = await infer([frame.rgb for frame in batch])
        frames_metric.inc(len(batch))
        return list(zip(batch, results, strict=True))

    frames = iterate_in_thread(reader, reader.close)
    async for pairs in ordered_map(batched(frames, max(1, batch_size)), run, window):
        for frame, result in pairs:
            yield frame, result, expected


def summary_message(frame: Frame) -> video_pb2.VideoSummary | None:
    """The percept.common.v1.VideoSummary a video response carries: set on the
    last frame only (None, the field unset, before)."""
    summary = frame.summary
    if summary is None:
        return None
    return video_pb2.VideoSummary(
        expected_frames=summary.expected_frames,
        processed_frames=summary.processed_frames,
        last_frame_index=summary.last_frame_index,
        partial=summary.partial,
        reason=summary.reason,
    )


async def live_results(
    requests: AsyncIterator,
    infer: Callable[[bytes, O], Awaitable[R]],
    options_of: Callable[[object], O],
    *,
    window: int,
    method: str,
) -> AsyncIterator[tuple[int, R]]:
    """Run `infer` on each request's image as it arrives, `window` in flight;
    yield (frame_index, result) in order. A request without options uses the
    first request's. An error names the frame it came from."""
    frames_metric = FRAMES.labels(method)
    first: list[O] = []

    async def numbered():
        index = 0
        async for request in requests:
            if request.HasField("options") or not first:
                opts = options_of(request.options)
                if not first:
                    first.append(opts)
            else:
                opts = first[0]
            yield index, request.image.content, opts
            index += 1

    async def run(item):
        index, content, opts = item
        try:
            result = await infer(content, opts)
        except PerceptError as exc:
            raise type(exc)(f"frame {index}: {exc.message}") from None
        frames_metric.inc()
        return index, result

    async for pair in ordered_map(numbered(), run, window):
        yield pair
