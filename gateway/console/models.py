"""Bodies of the console's APIs (/api/stats, /api/replicas), for /openapi.json."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Summary(BaseModel):
    """Tasks that ended over a window of whole minutes (the current one included)."""

    submitted: int
    succeeded: int
    failed: int
    cancelled: int
    ended: int
    per_minute: float = Field(description="Tasks ended per minute over the window.")
    success_rate: float | None = Field(description="[0, 1] of the tasks that ended; null: none.")
    failure_rate: float | None = Field(description="[0, 1] of the tasks that ended; null: none.")
    run_p50_ms: float | None = Field(description="Run time (started to ended), ms.")
    run_p95_ms: float | None
    wait_p50_ms: float | None = Field(description="Wait (accepted to started), ms.")
    wait_p95_ms: float | None


class Point(BaseModel):
    """One minute."""

    t: int = Field(description="Start of the minute, Unix seconds.")
    submitted: int
    succeeded: int
    failed: int
    cancelled: int
    run_p50_ms: float | None
    run_p95_ms: float | None


class KindStats(BaseModel):
    id: str = Field(description="kind:media, e.g. face_detection:image.")
    kind: str
    media: Literal["image", "video"]
    backend: str
    queued: int = Field(description="Tasks queued now (as /api/tasks?status=queued lists).")
    running: int = Field(description="Tasks running now (as /api/tasks?status=running lists).")
    oldest_waiting_s: float = Field(
        description="Age of the oldest queued task since it was accepted, seconds (0: none)."
    )
    last_5m: Summary
    last_60m: Summary
    series: list[Point] = Field(description="One point a minute, oldest first.")


class Stats(BaseModel):
    time: float = Field(description="When this was read, Unix seconds.")
    minutes: int = Field(description="Minutes in each series.")
    counts: dict[str, int] = Field(description="Tasks kept, by status.")
    kinds: list[KindStats]


class Replica(BaseModel):
    """One replica, as the monitor last saw it."""

    backend: str = Field(description="face or object (the gateway's backend).")
    address: str = Field(description="ip:port probed.")
    target: str = Field(description="The targets setting it was resolved from.")
    state: Literal["serving", "not_serving", "unreachable", "gone"]
    state_since: float = Field(description="When it entered this state, Unix seconds.")
    error: str | None = Field(None, description="Why it is not serving, when known.")
    first_seen: float
    last_seen: float | None = Field(None, description="Last answer, Unix seconds.")
    last_probe: float
    stale: bool = Field(description="No monitor probed it lately (no gateway is probing).")
    replica: str | None = Field(
        None, description="Its own name: the `replica` field of the tasks it ran."
    )
    services: list[str] | None = None
    model: str | None = None
    engine: str | None = Field(None, description="dlib, onnxruntime or pytorch.")
    device: str | None = None
    workers: int | None = None
    workers_ready: int | None = None
    calls_in_flight: int | None = None
    calls_served: int | None = None
    calls_failed: int | None = Field(None, description="Failed through the replica's fault.")
    calls_refused: int | None = Field(
        None, description="Refused as bad input, or cancelled by their caller."
    )
    calls_per_s: float | None = Field(None, description="Calls ended per second lately.")
    mean_call_seconds: float | None = None
    started_at: float | None = None
    worker_restarts: int | None = None


class ReplicaList(BaseModel):
    replicas: list[Replica]
    probe_interval_s: float
    forget_after_s: float
    targets: dict[str, str] = Field(description="Each backend's targets setting.")
    monitor: str | None = Field(description="The gateway process probing now; null: none.")
