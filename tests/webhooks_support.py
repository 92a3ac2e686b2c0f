"""The webhook tests share these: the delivery process, events published
straight into Redis, and a stack of one API process and one delivery process
(a module-scoped fixture: a test module imports it to use it)."""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as aioredis

from gateway import events
from tests.support import GatewayProcess

DELIVERY_ENV = {
    "GATEWAY_WEBHOOK_ALLOW_PRIVATE": "true",  # the tests' receivers are on loopback
    "GATEWAY_WEBHOOK_TIMEOUT_S": "3",
    "GATEWAY_WEBHOOK_BACKOFF_S": "0.2",
    "GATEWAY_WEBHOOK_BACKOFF_MAX_S": "2",
}


class DeliveryProcess(GatewayProcess):
    """python -m gateway.webhooks_delivery: ready once its loops run."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gateway.webhooks_delivery"]

    def ready(self) -> bool:
        return "webhook delivery started" in self.log()


def publish_many(url: str, tenant: str, items: list[tuple[str, dict]]) -> list[str]:
    async def go() -> list[str]:
        client = aioredis.from_url(url, decode_responses=True)
        try:
            return [await events.publish(client, tenant, t, d) for t, d in items]
        finally:
            await client.aclose()

    return asyncio.run(go())
