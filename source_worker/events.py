"""Where a source's events go: the gateway's event log (gateway/events.py:
durable, per tenant, bounded; `GET /api/events`, its SSE stream, webhooks and
MQTT read it), counted here by type."""

from __future__ import annotations

from gateway import events
from source_worker.metrics import EVENTS


async def publish(redis, tenant: str, type: str, data: dict) -> str:  # noqa: A002
    event_id = await events.publish(redis, tenant, type, data)
    EVENTS.labels(type).inc()
    return event_id
