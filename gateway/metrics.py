"""Gateway metrics (Prometheus). Task metrics are labelled by the task kind's
`kind` and `media`, as declared in gateway/kinds.py."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "percept_gateway_http_requests_total",
    "HTTP requests, by route, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "percept_gateway_http_request_seconds",
    "HTTP request latency, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30),
)
TASKS_SUBMITTED = Counter(
    "percept_gateway_tasks_submitted_total",
    "Tasks accepted, by kind, media and mode (queued, or inline in simple mode).",
    ["kind", "media", "mode"],
)
TASKS_FINISHED = Counter(
    "percept_gateway_tasks_finished_total",
    "Tasks ended, by kind, media and final status.",
    ["kind", "media", "status"],
)
TASK_SECONDS = Histogram(
    "percept_gateway_task_seconds",
    "Task time by phase: wait (accepted to started) and run (started to ended).",
    ["kind", "media", "phase"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
QUEUE_WAITING = Gauge(
    "percept_gateway_queue_waiting",
    "Tasks queued and not yet taken by a dispatcher, by kind and media.",
    ["kind", "media"],
)
QUEUE_RUNNING = Gauge(
    "percept_gateway_queue_running",
    "Tasks taken by a dispatcher and not yet ended, by kind and media.",
    ["kind", "media"],
)
QUEUE_OLDEST = Gauge(
    "percept_gateway_queue_oldest_waiting_seconds",
    "Age of the oldest queued task, by kind and media.",
    ["kind", "media"],
)
