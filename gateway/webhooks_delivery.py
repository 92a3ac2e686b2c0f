"""Webhook delivery: fan events out of the outbox, then send each delivery,
at least once, signed, with retries.

Two loops per process (API processes with dispatchers, `python -m
gateway.worker`, or this module's own process kind: `python -m
gateway.webhooks_delivery`), any number of processes:

- fan-out: reads the outbox (gateway/events.py) through the consumer group `webhooks`; for
  each event, one script creates a delivery per matching subscription and
  acknowledges the entry (a process killed before that leaves the entry
  pending: another claims it after FANOUT_LEASE_S and fans it out again; a
  delivery that exists is not created twice);
- delivery: takes the subscriptions with deliveries due (`wh:ready`), at most
  GATEWAY_WEBHOOK_PER_SUBSCRIPTION of each at a time, and sends them. Taking a
  delivery pushes its due time a lease ahead, so one being sent by a process
  that dies is sent again after the lease. Each answer settles the delivery in
  one script: 2xx done; otherwise due again after exponential backoff with
  jitter (or Retry-After, when longer) until GATEWAY_WEBHOOK_RETRY_FOR_S has
  passed, then failed and kept for "send again".

A request goes to the address the URL's host resolved to just before it, once
checked (gateway/webhooks.py: no loopback, private or link-local address
unless allowed), with the original Host and TLS server name; redirects are not
followed (a 3xx is a failed attempt); at most MAX_RESPONSE_BYTES of a
response are read.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import os
import random
import signal
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import Counter, Histogram

from gateway import events, webhooks
from gateway.redis_client import redis_client
from gateway.webhooks import Subscription, TargetRefused, WebhookStore
from gateway.webhooks_http import HttpError, Sender

logger = logging.getLogger(__name__)

GROUP = events.WEBHOOK_GROUP
FANOUT_LEASE_S = 10.0
MAX_RESPONSE_BYTES = 4096
POLL_S = 0.05


DELIVERIES = Counter(
    "percept_webhook_attempts_total", "Webhook delivery attempts, by outcome", ["outcome"]
)
DELIVERY_SECONDS = Histogram(
    "percept_webhook_attempt_seconds", "Time a receiver took to answer one delivery"
)

# KEYS: the outbox, then enqueue's keys for each subscription it goes to
# (WebhookKeys.enqueue: 4 each). ARGV: outbox entry id, group, event id,
# envelope, now, retention s, then those subscriptions' ids. Creates the
# deliveries and acknowledges the entry in one step; deletes the entry unless
# an MQTT group also reads it.
_FANOUT = (
    webhooks.LUA_ENQUEUE
    + f"""
local outbox = KEYS[1]
for i = 7, #ARGV do
  local k = 2 + (i - 7) * 4
  enqueue(KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], ARGV[i], ARGV[3], ARGV[4], ARGV[5],
          ARGV[6], '0')
end
redis.call('XACK', outbox, ARGV[2], ARGV[1])
local shared = false
for _, g in ipairs(redis.call('XINFO', 'GROUPS', outbox)) do
  for j = 1, #g, 2 do
    if g[j] == 'name' and g[j + 1] == '{events.MQTT_GROUP}' then shared = true end
  end
end
if not shared then redis.call('XDEL', outbox, ARGV[1]) end
return #ARGV - 6
"""
)

# KEYS: due, ready, subscription, what its deliveries' keys start with.
# ARGV: sub id, now, lease until, most to take. Takes due deliveries (their due time pushed a
# lease ahead), counts their attempt, and returns what sending needs in the
# same round trip: {subscription fields, id, envelope, attempt, first try, ...}
# ({} when the subscription is gone: its deliveries are dropped).
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
local sub = redis.call('HGETALL', KEYS[3])
local out = {sub}
for _, id in ipairs(ids) do
  local key = KEYS[4] .. id
  local d = redis.call('HMGET', key, 'event', 'status', 'first_at')
  if #sub == 0 or not d[1] or d[2] ~= 'pending' then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    local attempt = redis.call('HINCRBY', key, 'attempts', 1)
    table.insert(out, id)
    table.insert(out, d[1])
    table.insert(out, attempt)
    table.insert(out, d[3] or ARGV[2])
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[1] then redis.call('ZADD', KEYS[2], first[2], ARGV[1])
else redis.call('ZREM', KEYS[2], ARGV[1]) end
return out
"""

# KEYS: delivery, due, ready, failed, log. ARGV: sub id, event id, outcome
# (succeeded | retry | failed), next try (or ""), now, status code (or ""),
# latency ms (or ""), error, attempt, event type, retention s, log length.
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  local status = ARGV[3] == 'retry' and 'pending' or ARGV[3]
  redis.call('HSET', KEYS[1], 'status', status, 'code', ARGV[6], 'error', ARGV[8],
             'next_at', ARGV[4], 'last_at', ARGV[5])
  if ARGV[3] == 'retry' then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
  else redis.call('ZREM', KEYS[2], ARGV[2]) end
  if ARGV[3] == 'failed' then redis.call('ZADD', KEYS[4], ARGV[5], ARGV[2]) end
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if first[1] then redis.call('ZADD', KEYS[3], first[2], ARGV[1])
else redis.call('ZREM', KEYS[3], ARGV[1]) end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[12], '*', 'time', ARGV[5],
           'event_id', ARGV[2], 'event_type', ARGV[10], 'attempt', ARGV[9],
           'status_code', ARGV[6], 'latency_ms', ARGV[7], 'outcome', ARGV[3],
           'error', ARGV[8], 'next_try', ARGV[4])
redis.call('EXPIRE', KEYS[5], ARGV[11])
return 1
"""


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: half the doubled delay, plus up to half again."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


class Deliverer:
    """The fan-out and delivery loops of one process."""

    def __init__(self, redis, settings, consumer: str | None = None) -> None:
        self.redis = redis  # decoded
        self.settings = settings
        self.store = WebhookStore(redis, retention_s=settings.events_max_age_s)
        self.keys = self.store.keys
        self.outbox = events.outbox_of(redis)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease_s = 2 * settings.webhook_timeout_s + 5
        self.inflight: dict[str, int] = {}
        self._free = settings.webhook_concurrency
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._work: set[asyncio.Task] = set()
        self._subs: dict[str, list[Subscription]] = {}
        self._subs_version: str | None = None
        self.mqtt = None
        self._fanout = redis.register_script(_FANOUT)
        self._claim = redis.register_script(_CLAIM)
        self._settle = redis.register_script(_SETTLE)
        self.http = Sender(settings.webhook_timeout_s, MAX_RESPONSE_BYTES)  # no redirect, bounded

    async def start(self) -> None:
        with contextlib.suppress(Exception):
            await events.ensure_group(self.redis, GROUP)
        self._tasks = [
            asyncio.create_task(self._fanout_loop(), name="webhook-fanout"),
            asyncio.create_task(self._reclaim_loop(), name="webhook-reclaim"),
            asyncio.create_task(self._deliver_loop(), name="webhook-delivery"),
        ]
        if self.settings.mqtt_url:
            from gateway.mqtt import MqttPublisher

            self.mqtt = MqttPublisher(self.redis, self.settings, self.consumer)
            await self.mqtt.start()
        logger.info("webhook delivery started: consumer %s", self.consumer)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in list(self._work):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._work, return_exceptions=True)
        if self.mqtt is not None:
            await self.mqtt.stop()
        await self.http.close()

    async def _guarded(self, what: str, body) -> None:
        """Run a loop body forever: a Redis restart or a bug is logged, not fatal."""
        while True:
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                if "NOGROUP" in str(exc):
                    with contextlib.suppress(Exception):
                        await events.ensure_group(self.redis, GROUP)
                else:
                    logger.warning("webhook %s: %s; going on", what, exc, exc_info=True)
                await asyncio.sleep(1)

    # --- fan-out ------------------------------------------------------------------

    async def _fanout_loop(self) -> None:
        async def once() -> None:
            reply = await self.redis.xreadgroup(
                GROUP, self.consumer, {self.outbox: ">"}, count=200, block=2000
            )
            for _stream, entries in reply or ():
                await self._fan_out(entries)

        await self._guarded("fan-out", once)

    async def _reclaim_loop(self) -> None:
        async def once() -> None:
            await asyncio.sleep(FANOUT_LEASE_S / 2)
            _next, claimed, *_ = await self.redis.xautoclaim(
                self.outbox, GROUP, self.consumer, int(FANOUT_LEASE_S * 1000), "0-0", count=200
            )
            entries = [(i, f) for i, f in claimed if f]
            if entries:
                logger.info("fanning out %d events a stopped process had taken", len(entries))
                await self._fan_out(entries)

        await self._guarded("reclaim", once)

    async def _subscriptions(self, tenant: str) -> list[Subscription]:
        subs = self._subs.get(tenant)
        if subs is None:
            subs = self._subs[tenant] = await self.store.of_tenant(tenant)
        return subs

    async def _fan_out(self, entries) -> None:
        now = repr(time.time())
        queued = 0
        version = await self.redis.get(self.keys.version)  # a change since: read them again
        if version != self._subs_version:
            self._subs, self._subs_version = {}, version
        for entry_id, fields in entries:
            envelope = json.loads(fields["e"])
            targets = [
                s.id for s in await self._subscriptions(fields["tenant"]) if s.wants(envelope)
            ]
            keys = [self.keys.enqueue(sub_id, envelope["id"]) for sub_id in targets]
            await self._fanout(
                keys=[self.outbox, *(name for four in keys for name in four)],
                args=[entry_id, GROUP, envelope["id"], fields["e"], now,
                      int(self.settings.events_max_age_s), *targets],
            )  # fmt: skip
            queued += len(targets)
        if queued:
            self._wake.set()

    # --- delivery -----------------------------------------------------------------

    async def _deliver_loop(self) -> None:
        async def once() -> None:
            while True:
                taken = await self._take()
                if not taken:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), POLL_S * 2)

        await self._guarded("delivery", once)

    async def _take(self) -> int:
        """Claim due deliveries, a few per subscription, and start sending them."""
        if self._free <= 0:
            return 0
        now = time.time()
        k = self.keys
        ready = await self.redis.zrangebyscore(k.ready, "-inf", now, start=0, num=500)
        taken = 0
        per_sub = self.settings.webhook_per_subscription
        for sub_id in ready:
            room = min(per_sub - self.inflight.get(sub_id, 0), self._free)
            if room <= 0:
                continue
            reply = await self._claim(
                keys=[k.due(sub_id), k.ready, k.sub(sub_id), k.delivery(sub_id, "")],
                args=[sub_id, repr(now), repr(now + self.lease_s), room],
            )  # fmt: skip
            if len(reply) < 2:
                continue
            fields = reply[0]
            sub = Subscription.from_hash(dict(zip(fields[::2], fields[1::2], strict=True)))
            for i in range(1, len(reply), 4):
                event_id, body, attempt, first_at = reply[i : i + 4]
                self._free -= 1
                self.inflight[sub_id] = self.inflight.get(sub_id, 0) + 1
                task = asyncio.create_task(
                    self._deliver(sub, event_id, body, int(attempt), float(first_at))
                )
                self._work.add(task)
                task.add_done_callback(self._work.discard)
                taken += 1
            if self._free <= 0:
                break
        return taken

    async def _deliver(
        self, sub: Subscription, event_id: str, body: str, attempt: int, first_at: float
    ) -> None:
        sub_id = sub.id
        try:
            await self._attempt(sub, event_id, body, attempt, first_at)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - due again after the lease
            logger.warning("delivery %s of %s failed to settle", event_id, sub_id, exc_info=True)
        finally:
            self._free += 1
            left = self.inflight.get(sub_id, 1) - 1
            if left:
                self.inflight[sub_id] = left
            else:
                self.inflight.pop(sub_id, None)
            self._wake.set()

    async def _attempt(
        self, sub: Subscription, event_id: str, raw_body: str, attempt: int, first_at: float
    ) -> None:
        sub_id = sub.id
        event_type = json.loads(raw_body)["type"]
        code, latency_ms, error, wait = await self.send(sub, event_id, raw_body.encode())
        now = time.time()
        s = self.settings
        if code is not None and 200 <= code < 300:
            outcome, next_try = "succeeded", ""
        else:
            delay = backoff(attempt, s.webhook_backoff_s, s.webhook_backoff_max_s)
            if wait is not None:
                delay = min(max(delay, wait), s.webhook_backoff_max_s)
            if now + delay > first_at + s.webhook_retry_for_s:
                outcome, next_try = "failed", ""
            else:
                outcome, next_try = "retry", repr(now + delay)
        DELIVERIES.labels(outcome).inc()
        await self._settle(
            keys=[self.keys.delivery(sub_id, event_id), self.keys.due(sub_id), self.keys.ready,
                  self.keys.failed(sub_id), self.keys.log(sub_id)],
            args=[sub_id, event_id, outcome, next_try, repr(now), "" if code is None else code,
                  "" if latency_ms is None else f"{latency_ms:.1f}", error, attempt, event_type,
                  int(s.events_max_age_s), webhooks.LOG_MAXLEN],
        )  # fmt: skip
        if outcome == "failed":
            logger.warning(
                "webhook %s: delivery %s failed for good after %d attempts (%s)",
                sub_id, event_id, attempt, error or code,
            )  # fmt: skip

    async def send(
        self, sub: Subscription, event_id: str, body: bytes
    ) -> tuple[int | None, float | None, str, float | None]:
        """One POST: (status code or None, latency ms, error text, Retry-After seconds)."""
        try:
            scheme, host, port = webhooks.check_url(sub.url)
            address = await webhooks.resolve(host, port, self.settings.webhook_allow_private)
        except TargetRefused as exc:
            return None, None, f"refused: {exc}", None
        parts = urlsplit(sub.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = webhooks.sign(sub.signing_secrets(time.time()), event_id, time.time(), body)
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = "Percept-Webhooks/1"
        start = time.perf_counter()
        try:
            answer = await self.http.post(
                scheme, address, port, parts.netloc, host, path, headers, body
            )
        except TimeoutError:
            return None, None, f"no answer within {self.http.timeout_s:g} s", None
        except (HttpError, OSError) as exc:
            return None, None, str(exc)[:300] or type(exc).__name__, None
        latency_ms = (time.perf_counter() - start) * 1000
        code = answer.status
        wait = retry_after(answer.headers.get("retry-after"))
        DELIVERY_SECONDS.observe(latency_ms / 1000)
        error = ""
        if 300 <= code < 400:
            error = f"redirect to {answer.headers.get('location', '?')[:200]} not followed"
        elif not 200 <= code < 300:
            error = f"HTTP {code}"
        return code, latency_ms, error, wait


def test_event(sub: Subscription) -> dict[str, Any]:
    return {
        "id": events.new_id(),
        "type": webhooks.TEST_EVENT,
        "tenant": sub.tenant,
        "time": time.time(),
        "seq": "0-0",
        "data": {"subscription_id": sub.id, "message": "a test event sent from Percept"},
    }


async def run(settings) -> None:
    redis = redis_client(settings.redis_url, decode_responses=True, socket_timeout=30)
    deliverer = Deliverer(redis, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await deliverer.start()
    try:
        await stop.wait()
    finally:
        await deliverer.stop()
        await redis.aclose()


def main() -> None:
    """python -m gateway.webhooks_delivery: webhook delivery only (a process kind of its own)."""
    from gateway.settings import GatewaySettings
    from percept_runtime.logs import configure_logging

    settings = GatewaySettings()
    configure_logging(settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
