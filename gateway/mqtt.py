"""MQTT out (optional, GATEWAY_MQTT_URL): every event of the outbox, published
to a broker with QoS 1.

Topics: `{prefix}/{tenant}/{type}` for every event (the envelope as JSON, as
webhooks send it), and for `source.state_changed` also
`{prefix}/{tenant}/sources/{source_id}/state`, retained, so a client that
connects later learns each source's state at once.

The outbox is read through its own consumer group (`mqtt`); an entry is
acknowledged only once the broker acknowledged the publish (PUBACK), and
entries a stopped process had taken are claimed again after a lease: at least
once, like webhooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from urllib.parse import urlsplit

import paho.mqtt.client as paho

from gateway.events import MQTT_GROUP as GROUP
from gateway.events import ensure_group, outbox_of

logger = logging.getLogger(__name__)

LEASE_S = 10.0
PUBACK_TIMEOUT_S = 10.0


def topics(prefix: str, envelope: dict) -> list[tuple[str, bool]]:
    """(topic, retained) pairs an event is published to."""
    tenant, etype = envelope["tenant"], envelope["type"]
    out = [(f"{prefix}/{tenant}/{etype}", False)]
    source = (envelope.get("data") or {}).get("source_id")
    if etype == "source.state_changed" and source:
        out.append((f"{prefix}/{tenant}/sources/{source}/state", True))
    return out


class MqttPublisher:
    def __init__(self, redis, settings, consumer: str) -> None:
        self.redis = redis
        self.outbox = outbox_of(redis)
        self.prefix = settings.mqtt_topic_prefix.strip("/")
        self.consumer = consumer
        parts = urlsplit(settings.mqtt_url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError(f"GATEWAY_MQTT_URL must be mqtt://host:port, not {settings.mqtt_url}")
        self.host, self.port = parts.hostname, parts.port or 1883
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"percept-{consumer}", clean_session=False
        )
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        self.client.max_inflight_messages_set(1000)
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        await ensure_group(self.redis, GROUP)
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()  # paho's network thread; reconnects by itself
        self._tasks = [
            asyncio.create_task(self._loop(">"), name="mqtt-publish"),
            asyncio.create_task(self._reclaim(), name="mqtt-reclaim"),
        ]
        logger.info(
            "MQTT publisher started: %s:%d, topics %s/...", self.host, self.port, self.prefix
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.client.loop_stop()
        with contextlib.suppress(Exception):
            self.client.disconnect()

    async def _loop(self, start: str) -> None:
        while True:
            try:
                reply = await self.redis.xreadgroup(
                    GROUP, self.consumer, {self.outbox: start}, count=200, block=2000
                )
                for _stream, entries in reply or ():
                    await self._publish(entries)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis or the broker away: go on later
                if "NOGROUP" in str(exc):
                    with contextlib.suppress(Exception):
                        await ensure_group(self.redis, GROUP)
                else:
                    logger.warning("MQTT publisher: %s; going on", exc)
                await asyncio.sleep(1)

    async def _reclaim(self) -> None:
        while True:
            await asyncio.sleep(LEASE_S / 2)
            with contextlib.suppress(Exception):
                _next, claimed, *_ = await self.redis.xautoclaim(
                    self.outbox, GROUP, self.consumer, int(LEASE_S * 1000), "0-0", count=200
                )
                entries = [(i, f) for i, f in claimed if f]
                if entries:
                    await self._publish(entries)

    async def _publish(self, entries) -> None:
        """Publish a batch, wait for every PUBACK, then acknowledge the entries
        (an entry not acknowledged is published again: at least once)."""
        infos = []
        for _entry_id, fields in entries:
            envelope = json.loads(fields["e"])
            for topic, retain in topics(self.prefix, envelope):
                infos.append(self.client.publish(topic, fields["e"], qos=1, retain=retain))

        def wait() -> bool:
            try:
                for info in infos:
                    info.wait_for_publish(PUBACK_TIMEOUT_S)
            except (RuntimeError, ValueError):  # not queued: the broker is away
                return False
            return all(info.is_published() for info in infos)

        if not await asyncio.to_thread(wait):
            raise ConnectionError(f"broker {self.host}:{self.port} did not acknowledge publishes")
        await self.redis.xack(self.outbox, GROUP, *[entry_id for entry_id, _ in entries])
