"""Multi-object tracking for videos and live streams: a track id for every box.

The association itself is Roboflow's `trackers` (ByteTrack / BoT-SORT; called,
not copied; numpy and scipy, no torch); this module feeds it plain numpy boxes
in frame order, gives each tracker its own id range, and keeps the scene
summary (per track: first and last frame, frames seen, its best observation,
its class by vote, its identity). Both services use it: the object service on YOLO boxes, the face
service on face boxes. Plain numpy and `trackers`: no grpc here.

State belongs to one call (one video, one stream): a Tracker is made per call
and dies with it, so ids are never shared across calls, streams or tenants.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field

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
    percept/common/v1/video.proto, where the ranges are checked), which
    are ultralytics' bytetrack.yaml (see _library_tracker for how they map
    onto Roboflow's trackers)."""

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


_available: bool | None = None  # whether Roboflow's trackers import (preload)


def preload() -> bool:
    """Import the trackers (scipy and supervision under them, no torch): about
    a second, so a server calls this at start-up, off its event loop, not on
    its first tracked call. Without them (an image without the `trackers`
    package) every call answers untracked, as with tracker off, and this says
    so once, at start-up."""
    global _available
    if _available is None:
        try:
            from trackers.core.botsort.tracker import BoTSORTTracker  # noqa: F401
            from trackers.core.bytetrack.tracker import ByteTrackTracker  # noqa: F401

            _available = True
        except ImportError as exc:
            logger.warning(
                "tracking is unavailable on this replica (%s): videos and streams are "
                "answered untracked; install trackers and supervision (see Dockerfile.face)",
                exc,
            )
            _available = False
    return _available


# ByteTrack's measurement noise (px², each box coordinate); see _tracker_classes.
_BYTETRACK_MEASUREMENT_NOISE = 1.0
_classes: tuple[type, type] | None = None


def _tracker_classes() -> tuple[type, type]:
    """The library's ByteTrack and BoT-SORT, numbering tracks from an id base
    (and ByteTrack confirming the first frame's tracks at once); made once."""
    global _classes
    if _classes is None:
        from trackers.core.botsort.tracker import BoTSORTTracker
        from trackers.core.bytetrack.tracker import ByteTrackTracker

        class _ByteTrack(ByteTrackTracker):
            tracker_id = None  # not in the library's registry of named trackers
            _id_base = 0
            _first_frame = True

            def _reset_id_allocator(self) -> None:
                self._next_track_id = self._id_base + 1

            def update(self, detections, frame=None, timestamp=None):
                self._stage_rows = None
                try:
                    return super().update(detections, frame, timestamp)
                finally:
                    self._first_frame = False

            def _get_associated_indices(self, similarity, threshold):
                # The official ByteTrack (and the library's BoT-SORT) match the
                # confirmed tracks first and give a track seen once (unconfirmed)
                # only the boxes left; the library's ByteTrack matches all at
                # once, so a duplicate box's one-frame track could take an
                # object whose track was lost for a few frames. Rows are
                # self.tracks in the first (high-score) association, then the
                # tracks it left unmatched.
                rows = self.tracks if self._stage_rows is None else self._stage_rows
                confirmed = np.array([t.tracker_id != -1 for t in rows], dtype=bool)
                if confirmed.all() or not confirmed.any():
                    result = super()._get_associated_indices(similarity, threshold)
                else:
                    first, second = np.flatnonzero(confirmed), np.flatnonzero(~confirmed)
                    matched, _, left = super()._get_associated_indices(similarity[first], threshold)
                    late, _, left_over = super()._get_associated_indices(
                        similarity[np.ix_(second, left)], threshold
                    )
                    pairs = [(int(first[r]), c) for r, c in matched]
                    pairs += [(int(second[r]), left[c]) for r, c in late]
                    taken = {r for r, _ in pairs}
                    result = (
                        pairs,
                        [r for r in range(len(rows)) if r not in taken],
                        sorted(left[c] for c in left_over),
                    )
                if self._stage_rows is None:
                    self._stage_rows = [rows[r] for r in result[1]]
                return result

            def _spawn_new_tracks(
                self, boxes, confidences, unmatched_high, high_indices, out_indices, out_ids
            ) -> None:
                tracks_before, out_before = len(self.tracks), len(out_indices)
                super()._spawn_new_tracks(
                    boxes, confidences, unmatched_high, high_indices, out_indices, out_ids
                )
                for track in self.tracks[tracks_before:]:
                    # The library's ByteTrack trusts a box to ~0.3 px (0.1 px²):
                    # real detectors jitter by pixels, and with that much trust
                    # two crossing people swap ids (TUD-Stadtmitte: IDF1 0.85,
                    # 2 switches; with 1 px², 0.94 and none). Its public setter.
                    estimator = track.state_estimator
                    estimator.set_kf_covariances(
                        measurement_noise=np.eye(estimator.kf.dim_z) * _BYTETRACK_MEASUREMENT_NOISE
                    )
                if not self._first_frame:
                    return
                # The first frame's new tracks are confirmed at once: the library
                # spawned one per listed detection scoring at least the threshold.
                spawned = iter(self.tracks[tracks_before:])
                for k in range(out_before, len(out_indices)):
                    if float(confidences[out_indices[k]]) >= self.track_activation_threshold:
                        track = next(spawned)
                        track.tracker_id = self._allocate_tracker_id()
                        out_ids[k] = track.tracker_id

        class _BoTSORT(BoTSORTTracker):
            tracker_id = None
            _id_base = 0

            def _reset_id_allocator(self) -> None:
                self._next_track_id = self._id_base + 1

        _classes = (_ByteTrack, _BoTSORT)
    return _classes


def _library_tracker(config: TrackerConfig, base: int):
    """Roboflow's ByteTrack or BoT-SORT for `config`, numbering its tracks from
    base + 1.

    The library counts one step per update() (no timestamps: fixed rate), so
    lost_track_frames is its lost-track buffer at its 30 fps reference rate.
    A track gets its id once seen in two consecutive frames, except the
    tracks of the call's first frame, which get theirs at once (BoT-SORT's
    instant_first_frame_activation; the same rule added to ByteTrack, as in
    the original ByteTrack). match_threshold is a largest cost, 1 - IoU: the
    library takes the smallest IoU, 1 - match_threshold (BoT-SORT: for its
    first, score-fused association; its second and unconfirmed ones keep the
    library's 0.5 and 0.3). BoT-SORT runs without camera-motion compensation
    (fixed cameras; it would need every frame's pixels) and, as in the
    library, without an appearance model. ByteTrack gets two settings of ours
    (_tracker_classes): confirmed tracks match first, and boxes are trusted to
    about 1 px."""
    bytetrack, botsort = _tracker_classes()
    min_iou = max(0.0, 1.0 - config.match_threshold)
    common = dict(
        lost_track_buffer=config.lost_track_frames,
        frame_rate=30.0,
        track_activation_threshold=config.new_track_threshold,
        minimum_consecutive_frames=2,
        high_conf_det_threshold=config.high_threshold,
    )
    if config.kind == "botsort":
        impl = botsort.__new__(botsort)
        impl._id_base = base
        impl.__init__(
            **common,
            minimum_iou_threshold_first_assoc=min_iou,
            enable_cmc=False,
            instant_first_frame_activation=True,
        )
        return impl
    impl = bytetrack.__new__(bytetrack)
    impl._id_base = base
    impl.__init__(**common, minimum_iou_threshold=min_iou)
    return impl


class Tracker:
    """One call's tracker: update() once per frame, in frame order."""

    def __init__(self, config: TrackerConfig) -> None:
        if config.enabled and not preload():
            config = TrackerConfig(kind="off")
        self.config = config
        self._base = _take_base() if config.enabled else None
        self._impl = _library_tracker(config, self._base) if config.enabled else None

    def update(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> list[int]:
        """Track one frame's detections (boxes: N x 4 left, top, right, bottom,
        in pixels); return each detection's track id, 0 for a detection that is
        in no confirmed track (a new object's first frame, a low score)."""
        n = len(scores)
        if self._impl is None:
            return [0] * n
        import supervision as sv

        boxes = np.asarray(boxes, dtype=np.float32).reshape(n, 4)
        scores = np.asarray(scores, dtype=np.float32).reshape(n)
        # At or under low_threshold a box is no one's: the library would use it
        # to extend a track (its ByteTrack has no lower bound).
        kept = np.flatnonzero(scores > self.config.low_threshold)
        result = self._impl.update(
            sv.Detections(
                xyxy=boxes[kept],
                confidence=scores[kept],
                class_id=np.asarray(classes, dtype=int).reshape(n)[kept],
                data={"index": kept},
            )
        )
        ids = [0] * n
        for index, track_id in zip(result.data.get("index", ()), result.tracker_id, strict=True):
            if track_id >= 0:
                ids[int(index)] = int(track_id)
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
