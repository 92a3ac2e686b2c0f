"""One source, running: its reader thread (capture.py), the newest frame sent
to the face and/or object replicas over their bidirectional streams (one
frame in flight per stream: a slow model drops frames, it never queues them),
the replies through the source's rules (rules.py), and the events, counts,
status and live frame written to Redis.

Everything here belongs to this source's run and goes with it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import time
from typing import Any

import cv2
import grpc
import numpy as np
from google.protobuf.message import Message
from percept.common.v1 import video_pb2

from gateway import sources
from gateway.backends import TENANT_KEY, Backends
from source_worker import metrics
from source_worker.capture import Capture, Frame
from source_worker.events import publish
from source_worker.rules import Box, Rules
from source_worker.settings import WorkerSettings

logger = logging.getLogger(__name__)

LIVE_FRAME_TTL_S = 10
# What a change must restart the run for (the rest is taken in place).
PIPELINE_FIELDS = ("url", "loop", *sources.DETECTOR_FIELDS, "max_fps", "paused")
JPEG_QUALITY = 85


def _object_boxes(reply) -> list[Box]:
    return [
        Box(d.track_id, d.label, d.box.left, d.box.top, d.box.right, d.box.bottom, d.confidence)
        for d in reply.detections
    ]


def _face_boxes(reply) -> list[Box]:
    out = []
    for f in reply.faces:
        match = f.matches[0] if f.matches else None
        out.append(
            Box(f.track_id, "face", f.box.left, f.box.top, f.box.right, f.box.bottom, 1.0,
                match.subject if match else "", match.distance if match else 0.0)
        )  # fmt: skip
    return out


# A detector's reply (sources.DETECTORS) -> the boxes the rules track.
_BOXES = {"objects": _object_boxes, "faces": _face_boxes}


class _Stream:
    """One bidirectional stream to a detector's replicas, opened on first use
    and again after a failure; one request in flight. The first request of
    each opening carries the options, tracker and fields of `opening`."""

    def __init__(
        self, backends: Backends, detector: sources.Detector, opening: Message, metadata
    ) -> None:
        self.channel = backends.channels[detector.backend.name]
        self.detector = detector
        self.opening = opening
        self.boxes = _BOXES[detector.detect]
        self.metadata = metadata
        self.call = None
        self.first = True

    async def ask(self, jpeg: bytes) -> list[Box]:
        request = self.detector.request_class(image={"content": jpeg})
        if self.call is None:
            stub = self.channel.stream_stream(
                self.detector.rpc_path,
                lambda m: m.SerializeToString(),
                self.detector.response_class.FromString,
            )
            self.call = stub(metadata=self.metadata)
            self.first = True
        if self.first:
            request.MergeFrom(self.opening)
        try:
            await self.call.write(request)
            reply = await self.call.read()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            self.close()
            raise
        if reply is grpc.aio.EOF:
            error = await self.call.code(), await self.call.details()
            self.close()
            raise ConnectionError(f"the stream ended: {error[0].name} {error[1]}")
        self.first = False
        return self.boxes(reply)

    def close(self) -> None:
        if self.call is not None:
            self.call.cancel()
            self.call = None


class SourceRunner:
    def __init__(
        self,
        record: dict[str, Any],
        settings: WorkerSettings,
        redis,
        raw,
        backends: Backends,
        worker_id: str,
    ) -> None:
        self.record = record
        self.id = record["id"]
        self.tenant = record["tenant"]
        self.revision = record["revision"]
        self.settings = settings
        self.redis = redis
        self.raw = raw
        self.keys = sources.SourceKeys.for_client(redis)
        self.backends = backends
        self.worker_id = worker_id
        self.period = 1.0 / record["max_fps"]
        self.rules = Rules(
            record.get("zones", ()), record.get("lines", ()), end_after_s=settings.track_end_s
        )
        self.capture = Capture(
            record["url"],
            settings,
            loop=record.get("loop", False),
            on_state=self._on_state_threadsafe,
            on_frame=self._on_frame_threadsafe,
            open_timeout_s=settings.open_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            backoff_s=(settings.backoff_min_s, settings.backoff_max_s),
        )
        self.state, self.reason = "", ""
        self.processed = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=50)
        self.last_frame_at = 0.0
        self.processing_error = ""
        self._new_frame = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self._streams: dict[str, _Stream] = {}
        self._events: asyncio.Queue[tuple[str, dict]] = asyncio.Queue(maxsize=10_000)
        self._ending: str | None = None  # the file ended: its reason, until the tracks end

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._write_status(state="connecting", reason="")
        lost_frames = max(1, math.ceil(self.settings.track_end_s * self.record["max_fps"]))
        tracker = video_pb2.TrackerOptions(lost_track_frames=min(lost_frames, 10_000))
        metadata = ((TENANT_KEY, self.tenant), ("x-request-id", self.id), *self.backends.metadata)
        for detector in sources.detectors(self.record["detect"]):
            opening = detector.opening(self.record, tracker)
            self._streams[detector.detect] = _Stream(self.backends, detector, opening, metadata)
        self._tasks = [
            asyncio.create_task(self._process(), name=f"process-{self.id}"),
            asyncio.create_task(self._report(), name=f"report-{self.id}"),
            asyncio.create_task(self._write_events(), name=f"events-{self.id}"),
        ]
        logger.info("source %s (%s) started", self.id, sources.masked(self.record["url"]))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for stream in self._streams.values():
            stream.close()
        await asyncio.to_thread(self.capture.stop, self.settings.read_timeout_s + 2)
        logger.info("source %s stopped", self.id)

    def update(self, record: dict[str, Any]) -> bool:
        """Take a changed record in place when only its rules or name changed
        (the stream and the replicas' streams go on); False when it must restart."""
        if any(record.get(k) != self.record.get(k) for k in PIPELINE_FIELDS):
            return False
        self.rules = Rules(
            record.get("zones", ()), record.get("lines", ()), end_after_s=self.settings.track_end_s
        )
        self.record, self.revision = record, record["revision"]
        logger.info("source %s: rules changed (revision %d)", self.id, self.revision)
        return True

    @property
    def done(self) -> bool:
        return self.state == "ended" and not self._events.qsize()

    # --- from the reader thread --------------------------------------------------------

    def _on_state_threadsafe(self, state: str, reason: str) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_state, state, reason)

    def _on_frame_threadsafe(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._new_frame.set)

    def _on_state(self, state: str, reason: str) -> None:
        if state == "ended" and self._ending is None:
            # The processor ends the tracks after the last frame, then the source.
            self._ending = reason
            self._new_frame.set()
            return
        if (state, reason) == (self.state, self.reason):
            return
        previous, self.state, self.reason = self.state, state, reason
        for s in sources.STATES:
            metrics.STATE.labels(self.id, s).set(1 if s == state else 0)
        if state != previous:
            logger.info("source %s: %s %s", self.id, state, reason)
            self._emit(
                "source.state_changed", {"state": state, "previous": previous, "reason": reason}
            )
        self._loop.create_task(self._write_status(state=state, reason=reason))

    # --- processing --------------------------------------------------------------------

    async def _warm(self) -> None:
        """Open the streams with one blank frame before reading the source: the
        first call of a stream pays for its set-up (the replica's tracker, the
        channel), and a file must not lose its first seconds to that."""
        ok, blank = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))
        for kind, stream in self._streams.items():
            try:
                await asyncio.wait_for(stream.ask(blank.tobytes()), 30.0)
            except (grpc.aio.AioRpcError, ConnectionError, TimeoutError) as exc:
                stream.close()
                logger.info("source %s: %s stream not warmed (%s)", self.id, kind, exc)

    async def _process(self) -> None:
        await self._warm()
        self.capture.start()
        next_due = 0.0
        failures = 0
        while True:
            if self._ending is None or self.state == "ended":
                await self._new_frame.wait()
            wait = next_due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._new_frame.clear()
            frame = self.capture.take()
            if frame is None:
                if self._ending is not None and self.state != "ended":
                    for event in self.rules.expire(time.time(), everything=True):
                        self._emit(event.type, {**event.data, "at": event.data["last_at"]})
                    self._on_state("ended", self._ending)
                continue
            next_due = time.monotonic() + self.period
            # Frames overwritten while already due were dropped (the model
            # was busy); those overwritten before were skipped (the cap).
            self.capture.due_at = time.time() + self.period
            try:
                await self._one(frame)
                failures = 0
                self.processing_error = ""
            except (grpc.aio.AioRpcError, ConnectionError) as exc:
                failures += 1
                detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
                self.processing_error = f"replica: {detail}"
                logger.warning("source %s: %s", self.id, self.processing_error)
                await asyncio.sleep(min(5.0, 0.2 * 2**failures))

    async def _one(self, frame: Frame) -> None:
        ok, jpeg = await asyncio.to_thread(
            cv2.imencode, ".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if not ok:
            return
        data = jpeg.tobytes()
        replies = await asyncio.gather(*(stream.ask(data) for stream in self._streams.values()))
        boxes = [b for reply in replies for b in reply]
        done = time.time()
        latency = done - frame.captured_at
        self.latencies.append(latency)
        metrics.LATENCY.labels(self.id).observe(latency)
        self.processed += 1
        metrics.FRAMES.labels(self.id, "processed").inc()
        self.last_frame_at = frame.captured_at
        for event in self.rules.update(boxes, frame.at):
            self._emit(event.type, {**event.data, "at": frame.at})
        meta = {
            "seq": frame.seq,
            "at": frame.at,
            "captured_at": frame.captured_at,
            "width": frame.image.shape[1],
            "height": frame.image.shape[0],
            "boxes": [
                {"track_id": b.track_id, "label": b.label, "confidence": round(b.confidence, 3),
                 "box": [round(b.left, 1), round(b.top, 1), round(b.right, 1), round(b.bottom, 1)],
                 "subject": b.subject}
                for b in boxes
            ],
            "counts": self.rules.counts,
        }  # fmt: skip
        key = self.keys.frame(self.id)
        async with self.raw.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping={"jpeg": data, "meta": json.dumps(meta)})
            pipe.expire(key, LIVE_FRAME_TTL_S)
            await pipe.execute()

    # --- reporting ---------------------------------------------------------------------

    def _emit(self, type_: str, data: dict) -> None:
        try:
            self._events.put_nowait((type_, {"source_id": self.id, **data}))
        except asyncio.QueueFull:
            logger.warning("source %s: event queue full, %s dropped", self.id, type_)

    async def _write_events(self) -> None:
        while True:
            type_, data = await self._events.get()
            try:
                await publish(self.redis, self.tenant, type_, data)
            except Exception:  # noqa: BLE001 - keep the source running; Redis comes back
                logger.exception("source %s: cannot write a %s event", self.id, type_)
                await asyncio.sleep(1.0)
            await self._count(type_, data)

    async def _count(self, type_: str, data: dict) -> None:
        """The counts per zone and line, in Redis: totals incremented per event
        (so they carry on across restarts and handovers), and who is inside now."""
        key = self.keys.counts(self.id)
        if type_ == "line.crossed":
            await self.redis.hincrby(key, f"{data['line_id']}:{data['direction']}", 1)
        elif type_ in ("zone.entered", "zone.left"):
            what = "entered" if type_ == "zone.entered" else "left"
            inside = {k: v for k, v in self.rules.counts.items() if k.endswith(":inside")}
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, f"{data['zone_id']}:{what}", 1)
                if inside:
                    pipe.hset(key, mapping=inside)
                await pipe.execute()

    async def _write_status(self, **fields: Any) -> None:
        if not await self.redis.exists(self.keys.source(self.id)):
            return  # deleted meanwhile: leave nothing behind
        await self.redis.hset(
            self.keys.status(self.id),
            mapping={**fields, "worker": self.worker_id, "updated_at": repr(time.time())},
        )

    async def _report(self) -> None:
        last = (time.monotonic(), self.capture.frames_in, self.processed, 0, 0)
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            frames_in, processed = self.capture.frames_in, self.processed
            dt = now - last[0]
            self._fps_in = (frames_in - last[1]) / dt
            fps_processed = (processed - last[2]) / dt
            dropped = self.capture.dropped
            metrics.FRAMES.labels(self.id, "in").inc(frames_in - last[1])
            metrics.FRAMES.labels(self.id, "dropped").inc(dropped - last[4])
            metrics.RECONNECTS.labels(self.id).inc(self.capture.reconnects - last[3])
            last = (now, frames_in, processed, self.capture.reconnects, dropped)
            metrics.FPS.labels(self.id, "in").set(self._fps_in)
            metrics.FPS.labels(self.id, "processed").set(fps_processed)
            latency = sorted(self.latencies)[len(self.latencies) // 2] if self.latencies else 0.0
            await self._write_status(
                state=self.state or "connecting",
                reason=self.reason,
                fps_in=f"{self._fps_in:.2f}",
                fps_processed=f"{fps_processed:.2f}",
                frames_in=frames_in,
                frames_processed=processed,
                frames_dropped=self.capture.dropped,
                reconnects=self.capture.reconnects,
                last_frame_at=repr(self.last_frame_at),
                latency_ms=f"{latency * 1000:.1f}",
                width=self.capture.width,
                height=self.capture.height,
                processing_error=self.processing_error,
            )
