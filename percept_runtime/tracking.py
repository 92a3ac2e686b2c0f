"""Multi-object tracking for videos and live streams: a track id for every box.

The association itself is ultralytics' ByteTrack / BoT-SORT (called, not
copied); this module feeds it plain numpy boxes in frame order, gives each
tracker its own id range, and keeps the scene summary (per track: first and
last frame, frames seen, its best observation, its class by vote, its
identity). Both services use it: the object service on YOLO boxes, the face
service on face boxes. Plain numpy and ultralytics: no grpc here.

State belongs to one call (one video, one stream): a Tracker is made per call
and dies with it, so ids are never shared across calls, streams or tenants.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

logger = logging.getLogger(__name__)

TRACKERS = ("bytetrack", "botsort", "off")

# Ids of one tracker: [base + 1, base + _ID_SPAN]; bases are drawn at random
# from uint32 space and never overlap with a live tracker's of this process.
_ID_SPAN = 1 << 20
_live_bases: set[int] = set()
_bases_lock = threading.Lock()


@dataclass(frozen=True)
class TrackerConfig:
    """How to track. The defaults equal the proto's (TrackerOptions in
    percept/common/v1/tracking.proto, where the ranges are checked) and
    ultralytics' bytetrack.yaml."""

    kind: str = "bytetrack"
    # Processed frames a lost track is kept, waiting to be matched again.
    lost_track_frames: int = 30
    # Detections at or above this score are matched first and may start tracks.
    high_threshold: float = 0.25
    # Detections above this (and below high_threshold) only extend tracks.
    low_threshold: float = 0.1
    # Smallest score that starts a new track.
    new_track_threshold: float = 0.25
    # Largest matching cost (1 - IoU, score-fused) accepted, (0, 1].
    match_threshold: float = 0.8

    @property
    def enabled(self) -> bool:
        return self.kind != "off"


def _take_base() -> int:
    with _bases_lock:
        while True:
            base = secrets.randbelow((1 << 32) - _ID_SPAN - 1)
            if all(abs(base - other) >= _ID_SPAN for other in _live_bases):
                _live_bases.add(base)
                return base


class _Boxes:
    """The Results-like view ultralytics' trackers read: conf, cls, xywh, and
    boolean indexing."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> None:
        self.xyxy = xyxy
        self.conf = conf
        self.cls = cls

    @property
    def xywh(self) -> np.ndarray:
        out = np.empty_like(self.xyxy)
        out[:, 0] = (self.xyxy[:, 0] + self.xyxy[:, 2]) / 2
        out[:, 1] = (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2
        out[:, 2] = self.xyxy[:, 2] - self.xyxy[:, 0]
        out[:, 3] = self.xyxy[:, 3] - self.xyxy[:, 1]
        return out

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index) -> _Boxes:
        return _Boxes(self.xyxy[index], self.conf[index], self.cls[index])


_available: bool | None = None  # whether ultralytics' trackers import (preload)


def preload() -> bool:
    """Import ultralytics' trackers (and torch under them): seconds, so a server
    calls this at start-up, off its event loop, not on its first tracked call.
    Without them (an image without ultralytics and lap) every call answers
    untracked, as with tracker off, and this says so once, at start-up."""
    global _available
    if _available is None:
        try:
            from ultralytics.trackers import bot_sort, byte_tracker  # noqa: F401

            _available = True
        except ImportError as exc:
            logger.warning(
                "tracking is unavailable on this replica (%s): videos and streams are "
                "answered untracked; install ultralytics and lap (the object extra)",
                exc,
            )
            _available = False
    return _available


def _ultralytics_tracker(config: TrackerConfig, base: int):
    from ultralytics.trackers.bot_sort import BOTSORT
    from ultralytics.trackers.byte_tracker import BYTETracker

    args = SimpleNamespace(
        tracker_type=config.kind,
        track_high_thresh=config.high_threshold,
        track_low_thresh=config.low_threshold,
        new_track_thresh=config.new_track_threshold,
        track_buffer=config.lost_track_frames,
        match_thresh=config.match_threshold,
        fuse_score=True,
        # BoT-SORT: no camera-motion compensation (fixed cameras; it would need
        # every frame's pixels) and no appearance model.
        gmc_method="none",
        proximity_thresh=0.5,
        appearance_thresh=0.8,
        with_reid=False,
        model="auto",
    )
    cls = BOTSORT if config.kind == "botsort" else BYTETracker

    class _Tracker(cls):
        def reset_id(self) -> None:
            self._ids = iter(range(base + 1, base + _ID_SPAN))

    return _Tracker(args)


class Tracker:
    """One call's tracker: update() once per frame, in frame order."""

    def __init__(self, config: TrackerConfig) -> None:
        if config.enabled and not preload():
            config = TrackerConfig(kind="off")
        self.config = config
        self._base = _take_base() if config.enabled else None
        self._impl = _ultralytics_tracker(config, self._base) if config.enabled else None

    def update(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> list[int]:
        """Track one frame's detections (boxes: N x 4 left, top, right, bottom,
        in pixels); return each detection's track id, 0 for a detection that is
        in no confirmed track (a new object's first frame, a low score)."""
        n = len(scores)
        if self._impl is None:
            return [0] * n
        boxes = np.asarray(boxes, dtype=np.float32).reshape(n, 4)
        impl = self._impl
        impl.update(
            _Boxes(
                boxes,
                np.asarray(scores, dtype=np.float32).reshape(n),
                np.asarray(classes, dtype=np.float32).reshape(n),
            )
        )
        # Read the tracks themselves: update()'s float32 array would round ids.
        ids = [0] * n
        for track in impl.tracked_stracks:
            if track.is_activated and track.frame_id == impl.frame_id:
                ids[int(track.idx)] = int(track.track_id)
        return ids

    def close(self) -> None:
        if self._base is not None:
            with _bases_lock:
                _live_bases.discard(self._base)
            self._base = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the scene summary ---------------------------------------------------------------


@dataclass
class TrackRecord:
    """What one track did over a video (or a stream, so far)."""

    track_id: int
    first_frame: int
    first_time: float
    last_frame: int
    last_time: float
    frames_seen: int = 0
    best_frame: int = 0
    best_box: tuple[float, float, float, float] = (0, 0, 0, 0)
    best_score: float = -1.0
    class_votes: Counter = field(default_factory=Counter)
    # Faces: the identity the track carries (set by the face service).
    subject: str = ""
    face_id: str = ""
    distance: float = 0.0

    @property
    def class_id(self) -> int:
        return self.class_votes.most_common(1)[0][0] if self.class_votes else 0


class SceneLog:
    """Per-track records of one call, fed once per tracked detection."""

    def __init__(self, max_tracks: int = 10_000) -> None:
        self.tracks: dict[int, TrackRecord] = {}
        self.max_tracks = max_tracks

    def observe(
        self,
        track_id: int,
        frame: int,
        time: float,
        box: tuple[float, float, float, float],
        score: float,
        class_id: int = 0,
    ) -> TrackRecord | None:
        """Record one detection of a track; `score` ranks observations (the best
        one is the track's picture: highest confidence, or best face)."""
        if not track_id:
            return None
        record = self.tracks.get(track_id)
        if record is None:
            if len(self.tracks) >= self.max_tracks:
                return None  # bounded: a pathological stream does not grow memory
            record = TrackRecord(track_id, frame, time, frame, time)
            self.tracks[track_id] = record
        record.last_frame, record.last_time = frame, time
        record.frames_seen += 1
        record.class_votes[class_id] += 1
        if score > record.best_score:
            record.best_score, record.best_frame, record.best_box = score, frame, tuple(box)
        return record

    def summary(self) -> list[TrackRecord]:
        """Every track, by first appearance."""
        return sorted(self.tracks.values(), key=lambda r: (r.first_frame, r.track_id))


class Scene:
    """One call's tracker and its log: update() once per frame, in frame order."""

    def __init__(self, config: TrackerConfig) -> None:
        self.tracker = Tracker(config)
        self.log = SceneLog()
        self.frames = 0

    @property
    def enabled(self) -> bool:
        return self.tracker.config.enabled

    def update(
        self,
        frame: int,
        time: float,
        boxes: list[tuple[float, float, float, float]],
        scores: list[float],
        classes: list[int],
        ranks: list[float] | None = None,
    ) -> list[int]:
        """Track one frame's boxes (left, top, right, bottom) and log them; return
        their track ids (0: untracked). `ranks` orders a track's sightings for
        its best one (default: the scores)."""
        self.frames += 1
        ids = self.tracker.update(np.asarray(boxes, dtype=np.float32), scores, classes)
        ranks = scores if ranks is None else ranks
        for i, track_id in enumerate(ids):
            self.log.observe(track_id, frame, time, boxes[i], ranks[i], classes[i])
        return ids

    def close(self) -> None:
        self.tracker.close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
