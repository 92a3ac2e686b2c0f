"""Gateway metrics (Prometheus). Task metrics are labelled by the task kind's
`kind` and `media`, as declared in gateway/kinds.py."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

KIND = ("kind", "media")  # every task metric's labels: the kind's `kind` and `media`

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
    [*KIND, "mode"],
)
TASKS_FINISHED = Counter(
    "percept_gateway_tasks_finished_total",
    "Tasks ended, by kind, media and final status.",
    [*KIND, "status"],
)
TASK_SECONDS = Histogram(
    "percept_gateway_task_seconds",
    "Task time by phase: wait (accepted to started) and run (started to ended).",
    [*KIND, "phase"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)


# The queue gauges are set at each scrape from the task records' status (the
# job table's live indexes, JobStore.queue_stats): the whole system's figures,
# the same from every gateway process, and what /api/tasks?status= lists.
def _queue_gauge(name: str, documentation: str) -> Gauge:
    return Gauge(f"percept_gateway_queue_{name}", f"{documentation}, by kind and media.", KIND)


QUEUE_WAITING = _queue_gauge("waiting", "Tasks queued (accepted, not yet started)")
QUEUE_RUNNING = _queue_gauge("running", "Tasks running (on a dispatcher, or inline in simple mode)")
QUEUE_OLDEST = _queue_gauge(
    "oldest_waiting_seconds",
    "Age of the oldest queued task since it was accepted (0: none queued)",
)
