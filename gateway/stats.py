"""Summaries of the per-minute task statistics the job table keeps (see
JobStore.stats): throughput, outcome rates and run-time percentiles, for the
console. Plain functions over the buckets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Upper bounds (ms) of the run/wait histogram buckets; the last bucket is open.
BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000)


def quantile(counts: Sequence[int], q: float, largest: float | None = None) -> float | None:
    """The q-quantile (ms) of a histogram over BOUNDS_MS, interpolated within
    its bucket like Prometheus' histogram_quantile, and never above `largest`
    (the longest value seen, when known); None without samples."""
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    seen = 0
    value = float(BOUNDS_MS[-1])
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            low = BOUNDS_MS[i - 1] if i else 0
            if i < len(BOUNDS_MS):
                value = low + (BOUNDS_MS[i] - low) * (rank - seen) / n
            elif largest:
                value = largest  # the open last bucket: its longest is the best estimate
            break
        seen += n
    return min(value, largest) if largest else value


def largest(rows: Sequence[dict[str, Any]], field: str) -> float | None:
    """The longest time (ms) the rows recorded in `field` (run_max, wait_max);
    None when a row with samples lacks it (written before it was kept)."""
    prefix = field[0]  # its histogram's buckets: r1.., w1..
    values = []
    for row in rows:
        if row.get(field):
            values.append(float(row[field]))
        elif any(k[:1] == prefix and k[1:].isdigit() and int(v) for k, v in row.items()):
            return None
    return max(values) if values else None


def histogram(rows: Sequence[dict[str, Any]], prefix: str) -> list[int]:
    return [
        sum(int(row.get(f"{prefix}{i + 1}", 0)) for row in rows) for i in range(len(BOUNDS_MS) + 1)
    ]


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Totals over some one-minute buckets: counts, per-minute rate, outcome
    rates (of the tasks that ended) and run/wait percentiles in ms."""
    counts = {
        key: sum(int(row.get(key, 0)) for row in rows)
        for key in ("submitted", "succeeded", "failed", "cancelled")
    }
    ended = counts["succeeded"] + counts["failed"] + counts["cancelled"]
    run = histogram(rows, "r")
    wait = histogram(rows, "w")
    minutes = max(1, len(rows))
    longest_run, longest_wait = largest(rows, "run_max"), largest(rows, "wait_max")
    return {
        **counts,
        "ended": ended,
        "per_minute": ended / minutes,
        "success_rate": counts["succeeded"] / ended if ended else None,
        "failure_rate": counts["failed"] / ended if ended else None,
        "run_p50_ms": quantile(run, 0.5, longest_run),
        "run_p95_ms": quantile(run, 0.95, longest_run),
        "wait_p50_ms": quantile(wait, 0.5, longest_wait),
        "wait_p95_ms": quantile(wait, 0.95, longest_wait),
    }


def series(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point a minute (oldest first): what ended, and run-time p50/p95."""
    out = []
    for row in rows:
        run = histogram([row], "r")
        longest = largest([row], "run_max")
        out.append(
            {
                "t": row["minute"],
                "submitted": int(row.get("submitted", 0)),
                "succeeded": int(row.get("succeeded", 0)),
                "failed": int(row.get("failed", 0)),
                "cancelled": int(row.get("cancelled", 0)),
                "run_p50_ms": quantile(run, 0.5, longest),
                "run_p95_ms": quantile(run, 0.95, longest),
            }
        )
    return out
