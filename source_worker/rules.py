"""A source's rules on its tracked boxes: tracks starting and ending, zones
entered and left (with the dwell time), lines crossed (with the direction),
faces identified. The geometry is supervision's (`PolygonZone`, `LineZone`),
called, not copied; this module keeps what supervision does not: per-track
state (when it entered, which zones it is in, its summary) and the events.

State belongs to one source's run and dies with it. Plain Python + numpy +
supervision: no gRPC, no Redis.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import supervision as sv

# Where a box is tested against zones and lines: its centre (what a person
# drawing a zone on the frame expects).
ANCHOR = sv.Position.CENTER


@dataclass(frozen=True)
class Box:
    """One tracked box of a frame (track_id 0: untracked, ignored by the rules)."""

    track_id: int
    label: str
    left: float
    top: float
    right: float
    bottom: float
    confidence: float = 1.0
    subject: str = ""  # faces: the identity matched, if any
    distance: float = 0.0


@dataclass
class Event:
    type: str
    data: dict[str, Any]


@dataclass
class _Track:
    track_id: int
    label: str
    first_at: float
    last_at: float
    frames: int = 0
    zones: dict[str, float] = field(default_factory=dict)  # zone id -> entered at
    visited: set[str] = field(default_factory=set)
    crossings: int = 0
    subject: str = ""


def _wanted(classes: list[str], label: str) -> bool:
    return not classes or label in classes


class Rules:
    """Feed it every processed frame's boxes, in order; it returns the events.

    `end_after_s`: a track unseen this long has ended (keep it at least the
    tracker's own lost-track time, so a track that comes back is the same one).
    `min_crossing_frames`: frames a box must stay on the far side of a line
    before the crossing counts (supervision's jitter guard)."""

    def __init__(
        self,
        zones: Iterable[dict[str, Any]] = (),
        lines: Iterable[dict[str, Any]] = (),
        *,
        end_after_s: float = 3.0,
        min_crossing_frames: int = 2,
    ) -> None:
        self.end_after_s = end_after_s
        self.zones = [
            (z["id"], list(z.get("classes") or ()), sv.PolygonZone(
                polygon=np.asarray(z["polygon"], dtype=np.int32), triggering_anchors=(ANCHOR,)
            ))
            for z in zones
        ]  # fmt: skip
        self.lines = [
            (ln["id"], list(ln.get("classes") or ()), sv.LineZone(
                start=sv.Point(*ln["start"]), end=sv.Point(*ln["end"]),
                triggering_anchors=(ANCHOR,), minimum_crossing_threshold=min_crossing_frames,
            ))
            for ln in lines
        ]  # fmt: skip
        self.tracks: dict[int, _Track] = {}
        self.counts: dict[str, int] = {}  # "zone:entered", "line:in", ... running totals

    def _count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def update(self, boxes: list[Box], at: float) -> list[Event]:
        """The events of one frame taken at `at` (seconds, the source's clock)."""
        events: list[Event] = []
        boxes = [b for b in boxes if b.track_id]
        for box in boxes:
            track = self.tracks.get(box.track_id)
            if track is None:
                track = self.tracks[box.track_id] = _Track(box.track_id, box.label, at, at)
                events.append(
                    Event("track.started", {"track_id": box.track_id, "label": box.label})
                )
            track.last_at = at
            track.frames += 1
            if box.subject and box.subject != track.subject:
                track.subject = box.subject
                events.append(
                    Event(
                        "face.identified",
                        {"track_id": box.track_id, "subject": box.subject,
                         "distance": round(box.distance, 4)},
                    )
                )  # fmt: skip
        detections = _detections(boxes)
        for zone_id, classes, zone in self.zones:
            inside = zone.trigger(detections) if len(boxes) else np.zeros(0, bool)
            inside_ids = set()
            for box, is_in in zip(boxes, inside, strict=True):
                if not (is_in and _wanted(classes, box.label)):
                    continue
                inside_ids.add(box.track_id)
                track = self.tracks[box.track_id]
                if zone_id not in track.zones:
                    track.zones[zone_id] = at
                    track.visited.add(zone_id)
                    self._count(f"{zone_id}:entered")
                    events.append(
                        Event(
                            "zone.entered",
                            {"zone_id": zone_id, "track_id": box.track_id, "label": box.label},
                        )
                    )
            for box in boxes:
                track = self.tracks[box.track_id]
                if zone_id in track.zones and box.track_id not in inside_ids:
                    events.append(self._left(track, zone_id, at))
            self.counts[f"{zone_id}:inside"] = sum(
                1 for t in self.tracks.values() if zone_id in t.zones
            )
        for line_id, classes, line in self.lines:
            if not len(boxes):
                continue
            crossed_in, crossed_out = line.trigger(detections)
            for box, went_in, went_out in zip(boxes, crossed_in, crossed_out, strict=True):
                if not _wanted(classes, box.label) or not (went_in or went_out):
                    continue
                direction = "in" if went_in else "out"
                self.tracks[box.track_id].crossings += 1
                self._count(f"{line_id}:{direction}")
                events.append(
                    Event(
                        "line.crossed",
                        {"line_id": line_id, "track_id": box.track_id, "label": box.label,
                         "direction": direction},
                    )
                )  # fmt: skip
        events.extend(self.expire(at))
        return events

    def _left(self, track: _Track, zone_id: str, at: float) -> Event:
        entered = track.zones.pop(zone_id)
        self._count(f"{zone_id}:left")
        return Event(
            "zone.left",
            {"zone_id": zone_id, "track_id": track.track_id, "label": track.label,
             "dwell_s": round(at - entered, 3)},
        )  # fmt: skip

    def expire(self, now: float, *, everything: bool = False) -> list[Event]:
        """End the tracks unseen for end_after_s (every track, at the source's end)."""
        events = []
        for track_id in [
            t for t, track in self.tracks.items()
            if everything or now - track.last_at > self.end_after_s
        ]:  # fmt: skip
            track = self.tracks.pop(track_id)
            for zone_id in list(track.zones):
                events.append(self._left(track, zone_id, track.last_at))
            events.append(
                Event(
                    "track.ended",
                    {"track_id": track_id, "label": track.label, "first_at": track.first_at,
                     "last_at": track.last_at, "duration_s": round(track.last_at - track.first_at, 3),
                     "frames": track.frames, "zones": sorted(track.visited),
                     "crossings": track.crossings, "subject": track.subject},
                )
            )  # fmt: skip
        for zone_id, _, _ in self.zones:
            self.counts[f"{zone_id}:inside"] = sum(
                1 for t in self.tracks.values() if zone_id in t.zones
            )
        return events


def _detections(boxes: list[Box]) -> sv.Detections:
    if not boxes:
        return sv.Detections.empty()
    return sv.Detections(
        xyxy=np.asarray([[b.left, b.top, b.right, b.bottom] for b in boxes], dtype=np.float32),
        confidence=np.asarray([b.confidence for b in boxes], dtype=np.float32),
        class_id=np.zeros(len(boxes), dtype=int),
        tracker_id=np.asarray([b.track_id for b in boxes], dtype=int),
    )
