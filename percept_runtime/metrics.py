"""Prometheus metrics every server exports, and the HTTP endpoint serving them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

REQUESTS = Counter(
    "percept_grpc_requests_total",
    "gRPC calls finished, by method and status code.",
    ["method", "code"],
)
LATENCY = Histogram(
    "percept_grpc_request_seconds",
    "Wall time of gRPC calls, by method (streams: the whole stream).",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
IN_FLIGHT = Gauge("percept_grpc_in_flight", "gRPC calls in progress, by method.", ["method"])
FRAMES = Counter(
    "percept_frames_processed_total",
    "Video or live frames run through the model, by method.",
    ["method"],
)
WORKERS = Gauge("percept_workers_ready", "Inference worker processes that are loaded and warm.")
WORKER_RESTARTS = Counter(
    "percept_worker_restarts_total",
    "Worker processes started to replace one that died or was recycled for its memory.",
)


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Expose /metrics on an HTTP port (0 disables it)."""
    if port:
        start_http_server(port, addr=host)
