"""Ordered, bounded pipelining for streams of frames.

Frames are handed to the model as they arrive, up to `window` at once so every
worker stays busy, and results leave in input order. When the consumer stops
(the client cancelled, or an error), everything still queued is cancelled, so
a cancelled stream costs at most `window` frames of extra work.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from percept.common.v1 import image_pb2, video_pb2

from percept_runtime.errors import InvalidInput, PerceptError
from percept_runtime.fields import check, value
from percept_runtime.metrics import FRAMES
from percept_runtime.tracking import Scene, TrackerConfig, TrackRecord
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


def summary_message(
    frame: Frame,
    scene: Scene | None = None,
    labels: Sequence[str] = (),
    gallery_searches: int = 0,
) -> video_pb2.VideoSummary | None:
    """The percept.common.v1.VideoSummary a video response carries: set on the
    last frame only (None, the field unset, before), with the scene's tracks."""
    summary = frame.summary
    if summary is None:
        return None
    return video_pb2.VideoSummary(
        expected_frames=summary.expected_frames,
        processed_frames=summary.processed_frames,
        last_frame_index=summary.last_frame_index,
        partial=summary.partial,
        reason=summary.reason,
        tracks=tracks_message(scene.log.summary(), labels) if scene is not None else (),
        gallery_searches=gallery_searches,
    )


def stream_summary(
    scene: Scene, labels: Sequence[str] = (), gallery_searches: int = 0
) -> video_pb2.VideoSummary:
    """A live stream's summary so far (asked for with `summarize`)."""
    return video_pb2.VideoSummary(
        processed_frames=scene.frames,
        tracks=tracks_message(scene.log.summary(), labels),
        gallery_searches=gallery_searches,
    )


# --- tracking ---------------------------------------------------------------------

_TRACKERS = {
    video_pb2.TRACKER_TYPE_UNSPECIFIED: "bytetrack",
    video_pb2.TRACKER_TYPE_BYTETRACK: "bytetrack",
    video_pb2.TRACKER_TYPE_BOTSORT: "botsort",
    video_pb2.TRACKER_TYPE_OFF: "off",
}


def tracker_config(msg: video_pb2.TrackerOptions, path: str = "tracker") -> TrackerConfig:
    """Domain tracker settings from TrackerOptions (checked against the proto's
    rules); unset fields take the proto's defaults."""
    check(msg, path)
    config = TrackerConfig(
        kind=_TRACKERS[msg.tracker],
        lost_track_frames=value(msg, "lost_track_frames"),
        high_threshold=value(msg, "high_threshold"),
        low_threshold=value(msg, "low_threshold"),
        new_track_threshold=value(msg, "new_track_threshold"),
        match_threshold=value(msg, "match_threshold"),
    )
    if config.low_threshold > config.high_threshold:
        raise InvalidInput(
            f"{path}.low_threshold is {config.low_threshold:g}: it must not exceed "
            f"{path}.high_threshold ({config.high_threshold:g})"
        )
    return config


def tracks_message(
    records: Sequence[TrackRecord], labels: Sequence[str] = ()
) -> list[video_pb2.TrackSummary]:
    out = []
    for r in records:
        left, top, right, bottom = r.best_box
        class_id = r.class_id
        out.append(
            video_pb2.TrackSummary(
                track_id=r.track_id,
                first_frame_index=r.first_frame,
                first_timestamp=r.first_time,
                last_frame_index=r.last_frame,
                last_timestamp=r.last_time,
                frames_seen=r.frames_seen,
                best_frame_index=r.best_frame,
                best_box=image_pb2.BoundingBox(left=left, top=top, right=right, bottom=bottom),
                best_score=max(0.0, r.best_score),
                label=labels[class_id] if class_id < len(labels) else "",
                class_id=class_id,
                subject=r.subject,
                face_id=r.face_id,
                distance=r.distance,
            )
        )
    return out


async def live_results(
    requests: AsyncIterator,
    infer: Callable[[bytes, O], Awaitable[R]],
    options_of: Callable[[object], O],
    *,
    window: int,
    method: str,
) -> AsyncIterator[tuple[int, R, object]]:
    """Run `infer` on each request's image as it arrives, `window` in flight;
    yield (frame_index, result, request) in order. A request without options
    uses the first request's. An error names the frame it came from."""
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
            yield index, request, opts
            index += 1

    async def run(item):
        index, request, opts = item
        content = request.image.content
        try:
            result = await infer(content, opts)
        except PerceptError as exc:
            raise type(exc)(f"frame {index}: {exc.message}") from None
        frames_metric.inc()
        return index, result, request

    async for pair in ordered_map(numbered(), run, window):
        yield pair


class Closeable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closeable)


class FirstMessage(Generic[C]):
    """What a live call keeps from its first message (its tracker, whom it
    identifies against): made by `make` when that message arrives, before any
    frame is run, and closed when the call ends, however it ends.

        with FirstMessage(request_iterator, make) as call:
            async for ... in live_results(call.requests(), ...):
                call.state ...
    """

    def __init__(self, requests: AsyncIterator, make: Callable[[Any], C | Awaitable[C]]) -> None:
        self._source = requests
        self._make = make
        self._made: list[C] = []

    async def requests(self) -> AsyncIterator:
        """The call's requests, unchanged, making the state on the first."""
        async for request in self._source:
            if not self._made:
                made = self._make(request)
                self._made.append(await made if inspect.isawaitable(made) else made)
            yield request

    @property
    def state(self) -> C:
        return self._made[0]

    def __enter__(self) -> FirstMessage[C]:
        return self

    def __exit__(self, *exc) -> None:
        for made in self._made:
            made.close()
