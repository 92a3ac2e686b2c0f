"""Where a source's events go: the gateway's events module (durable, per
tenant, bounded; `GET /api/events`, SSE and webhooks read it)."""

from __future__ import annotations

import logging

from source_worker.metrics import EVENTS

logger = logging.getLogger(__name__)

try:
    from gateway.events import publish as _publish
except ImportError:  # pragma: no cover - before the events module is merged
    import json
    import time

    from gateway.jobs import PREFIX

    async def _publish(redis, tenant: str, type: str, data: dict) -> str:  # noqa: A002
        return await redis.xadd(
            f"{PREFIX}events:{tenant}",
            {"type": type, "data": json.dumps(data), "at": repr(time.time())},
            maxlen=10_000,
            approximate=True,
        )


async def publish(redis, tenant: str, type: str, data: dict) -> str:  # noqa: A002
    event_id = await _publish(redis, tenant, type, data)
    EVENTS.labels(type).inc()
    return event_id
