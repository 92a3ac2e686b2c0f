"""Source worker settings: env SOURCES_* (the URL policy shared with the API,
gateway/sources.py) plus the worker's own; the replicas' targets, TLS and
token are the gateway's (GATEWAY_FACE_TARGETS, GATEWAY_OBJECT_TARGETS, ...),
read through GatewaySettings so both talk to the replicas the same way."""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway.redis_client import check_url
from gateway.sources import SourcePolicy
from percept_runtime.settings import LoggingSettings, Port, redis_url_field


class WorkerSettings(LoggingSettings, SourcePolicy):
    """python -m source_worker. Every setting is env SOURCES_<NAME>, except REDIS_URL."""

    redis_url: str = redis_url_field("SOURCES_")
    """Redis holding the sources, their leases, status and events."""
    worker_id: str = ""
    """This worker's name (default: host and pid)."""
    lease_s: float = Field(6.0, gt=0.5, le=60)
    """A source whose worker has not renewed its lease this long is taken by another."""
    poll_s: float = Field(0.5, gt=0, le=10)
    """How often a worker reads the sources and renews its leases."""
    open_timeout_s: float = Field(5.0, gt=0)
    """Longest wait for a stream to open."""
    read_timeout_s: float = Field(5.0, gt=0)
    """Longest wait for a stream's next frame."""
    backoff_min_s: float = Field(0.5, gt=0)
    """First reconnect delay (doubles)."""
    backoff_max_s: float = Field(10.0, gt=0)
    """Longest reconnect delay."""
    track_end_s: float = Field(3.0, gt=0)
    """A track unseen this long has ended (track.ended)."""
    heartbeat_file: str = "/tmp/percept-sources.alive"
    """Touched on every poll that reached Redis; `python -m source_worker --check` reads it."""
    metrics_port: Port = 0
    """Prometheus /metrics port (0: off)."""

    @model_validator(mode="after")
    def _redis_url(self) -> WorkerSettings:
        check_url(self.redis_url)  # at start, as the gateway does: what is wrong, the form
        return self
