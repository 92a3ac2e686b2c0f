"""Source worker metrics (Prometheus), labelled by source id."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES = Counter(
    "percept_source_frames_total",
    "Frames of a source: read from the stream (in), processed, or dropped while the model was busy.",
    ["source", "outcome"],
)
FPS = Gauge(
    "percept_source_fps",
    "Frames per second over the last second, in and processed.",
    ["source", "what"],
)
RECONNECTS = Counter(
    "percept_source_reconnects_total", "Times a live stream dropped and was reopened.", ["source"]
)
STATE = Gauge(
    "percept_source_state",
    "1 for the source's current state (connecting, live, reconnecting, failed, ended).",
    ["source", "state"],
)
LATENCY = Histogram(
    "percept_source_latency_seconds",
    "Capture to processed (detections back and rules applied), per frame.",
    ["source"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5),
)
RUNNING = Gauge("percept_source_worker_sources", "Sources this worker runs now.")
EVENTS = Counter("percept_source_events_total", "Events written, by type.", ["type"])


def forget(source_id: str) -> None:
    """Drop a source's series when this worker stops running it."""
    for metric in (FRAMES, FPS, RECONNECTS, STATE, LATENCY):
        for labels in list(metric._metrics):  # noqa: SLF001 - prometheus_client has no public way
            if labels and labels[0] == source_id:
                metric.remove(*labels)
