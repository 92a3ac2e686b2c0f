"""Webhook subscriptions: their store, their secrets, Standard Webhooks
signing, the target check (no loopback, private or link-local addresses), and
the deliveries each subscription has (its log, "send again", "send a test").

Layout (prefix `percept:wh:`; `{percept}:wh:` on a cluster, the outbox's slot:
the fan-out creates deliveries in the script that takes the event):
- `sub:{id}`           hash: a subscription (tenant, url, filters, secrets);
- `subs`               sorted set of every subscription id by creation time;
- `tenant:{tenant}`    set of a tenant's subscription ids (the fan-out reads it);
- `dlv:{sub}:{event}`  hash: one delivery of one event to one subscription
                       (the envelope, attempts, status, the last answer);
- `due:{sub}`          sorted set: a subscription's pending deliveries by when
                       they are next due (a delivery being sent is due again
                       after its lease: a killed process loses nothing);
- `ready`              sorted set: subscriptions by their earliest due delivery
                       (the delivery loop takes a few of each, never a whole
                       burst of one);
- `log:{sub}`          stream: every attempt (event, attempt, status code,
                       latency, next try), bounded;
- `failed:{sub}`       sorted set: deliveries that ran out of retries, kept for
                       "send again".

The signing is the `standardwebhooks` package's (pinned), the same code
receivers verify with.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from gateway import events
from gateway.redis_client import Key, Names

LOG_MAXLEN = 1000
TEST_EVENT = "webhook.test"
DELIVERY_TYPES = (*events.EVENT_TYPES, TEST_EVENT)
TASKS_ALL, TASKS_NAMED = "all", "named"  # a subscription's `tasks` setting


class WebhookKeys(Names):
    """The keys of the layout above, under one prefix."""

    sub = Key("wh:sub")  # (sub id)
    subs = Key("wh:subs", family=False)
    tenant = Key("wh:tenant")  # (tenant)
    delivery = Key("wh:dlv")  # (sub id, event id)
    due = Key("wh:due")  # (sub id)
    ready = Key("wh:ready", family=False)
    log = Key("wh:log")  # (sub id)
    failed = Key("wh:failed")  # (sub id)
    version = Key("wh:version", family=False)  # bumped at every change: the fan-out reloads

    def enqueue(self, sub_id: str, event_id: str) -> list[str]:
        """The KEYS of LUA_ENQUEUE's `enqueue` for one delivery (ready last)."""
        return [self.delivery(sub_id, event_id), self.due(sub_id), self.failed(sub_id), self.ready]


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secrets_: list[str], msg_id: str, timestamp: float, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, one signature per secret (space-separated)."""
    when = datetime.fromtimestamp(timestamp, UTC)
    signatures = " ".join(Webhook(s).sign(msg_id, when, body) for s in secrets_)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": signatures,
    }


# --- the target check ---------------------------------------------------------------------


class TargetRefused(ValueError):
    """A webhook URL Percept will not send to (the message says why and what is accepted)."""


def address_refusal(ip: str, allow_private: bool) -> str | None:
    """Why an address may not be a webhook target, or None when it may."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_unspecified or addr.is_multicast:
        return f"{addr} is not a host address"
    if addr.is_global:
        return None
    for what, test in (
        ("a loopback", addr.is_loopback),
        ("a link-local", addr.is_link_local),
        ("a private", addr.is_private),
    ):
        if test:
            if allow_private:
                return None
            return (
                f"{addr} is {what} address; webhook targets must be public "
                "(GATEWAY_WEBHOOK_ALLOW_PRIVATE=true allows them)"
            )
    return f"{addr} is a reserved address"


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a webhook URL, or TargetRefused."""
    if len(url) > 2000:
        raise TargetRefused("the URL is over 2000 characters")
    if not url.isascii() or any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise TargetRefused(
            "the URL may hold only printable ASCII: percent-encode the rest "
            "(and write an international host name in its xn-- form)"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a URL ({exc})") from None
    if parts.scheme not in ("https", "http"):
        raise TargetRefused(f"the URL must be https:// or http://, not {parts.scheme or 'none'}")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    if parts.username or parts.password:
        raise TargetRefused("the URL may not carry a user or password")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to: `host` resolved now, every address checked
    (one refused address refuses the host: no rebinding between check and
    connect, since the caller connects to this very address)."""
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, ValueError) as exc:  # (an invalid IDNA name is a UnicodeError)
            why = getattr(exc, "strerror", None) or exc
            raise TargetRefused(f"{host} does not resolve ({why})") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        why = address_refusal(address, allow_private)
        if why is not None:
            raise TargetRefused(f"{host} resolves to {why}" if address != host else why)
    return addresses[0]


# --- subscriptions ------------------------------------------------------------------------


@dataclass
class Subscription:
    id: str
    tenant: str
    url: str
    types: list[str]
    kinds: list[str] = field(default_factory=list)
    source_ids: list[str] = field(default_factory=list)
    tasks: str = "all"  # TASKS_ALL: every matching task's events; TASKS_NAMED: only tasks naming it
    description: str = ""
    enabled: bool = True
    created_at: float = 0.0
    secret: str = ""
    old_secret: str = ""
    old_until: float = 0.0

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Subscription:
        return cls(
            id=raw["id"],
            tenant=raw["tenant"],
            url=raw["url"],
            types=json.loads(raw.get("types") or "[]"),
            kinds=json.loads(raw.get("kinds") or "[]"),
            source_ids=json.loads(raw.get("source_ids") or "[]"),
            tasks=raw.get("tasks") or TASKS_ALL,
            description=raw.get("description", ""),
            enabled=raw.get("enabled", "1") == "1",
            created_at=float(raw.get("created_at") or 0),
            secret=raw.get("secret", ""),
            old_secret=raw.get("old_secret", ""),
            old_until=float(raw.get("old_until") or 0),
        )

    def to_hash(self) -> dict[str, str]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "url": self.url,
            "types": json.dumps(self.types),
            "kinds": json.dumps(self.kinds),
            "source_ids": json.dumps(self.source_ids),
            "tasks": self.tasks,
            "description": self.description,
            "enabled": "1" if self.enabled else "0",
            "created_at": repr(self.created_at),
            "secret": self.secret,
            "old_secret": self.old_secret,
            "old_until": repr(self.old_until),
        }

    def wants(self, envelope: dict[str, Any]) -> bool:
        """Whether an event goes to this subscription (its type, kind, source).
        A task that names this subscription (its `webhook` option) reaches it
        whatever its `kinds` filter says; with `tasks` "named" only such tasks'
        events do (other event types follow the filters as ever)."""
        if not self.enabled or envelope["type"] not in self.types:
            return False
        data = envelope.get("data") or {}
        if "task_id" in data:
            if data.get("webhook") == self.id:
                return True
            if self.tasks == TASKS_NAMED:
                return False
        if self.kinds and "task_id" in data and data.get("kind") not in self.kinds:
            return False
        return not (
            self.source_ids and "source_id" in data and data.get("source_id") not in self.source_ids
        )

    def signing_secrets(self, now: float) -> list[str]:
        """The secret, and the previous one during the rotation overlap."""
        if self.old_secret and now < self.old_until:
            return [self.secret, self.old_secret]
        return [self.secret]

    def to_json(self, *, secret: bool = False) -> dict[str, Any]:
        """The API body: the secret only when asked (creation and rotation)."""
        body: dict[str, Any] = {
            "id": self.id,
            "tenant": self.tenant,
            "url": self.url,
            "types": self.types,
            "kinds": self.kinds,
            "source_ids": self.source_ids,
            "tasks": self.tasks,
            "description": self.description,
            "enabled": self.enabled,
            "created_at": self.created_at,
        }
        if self.old_secret and time.time() < self.old_until:
            body["previous_secret_valid_until"] = self.old_until
        if secret:
            body["secret"] = self.secret
        return body


class SubscriptionNotFound(LookupError):
    pass


class WebhookStore:
    """Subscriptions and their deliveries in Redis (a decoded client)."""

    def __init__(self, redis, *, retention_s: float = 7 * 86_400) -> None:
        self.redis = redis
        self.retention_s = retention_s
        self.keys = WebhookKeys.for_client(redis)
        self._enqueue_script = redis.register_script(_ENQUEUE)  # sent by hash, as the others

    async def create(self, sub: Subscription) -> Subscription:
        sub.id = sub.id or "sub_" + secrets.token_hex(8)
        sub.created_at = sub.created_at or time.time()
        sub.secret = sub.secret or new_secret()
        k = self.keys
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(k.sub(sub.id), mapping=sub.to_hash())
            pipe.zadd(k.subs, {sub.id: sub.created_at})
            pipe.sadd(k.tenant(sub.tenant), sub.id)
            pipe.incr(k.version)
            await pipe.execute()
        return sub

    async def get(self, sub_id: str, tenant: str | None = None) -> Subscription:
        """A subscription; another tenant's is not found (None: any, for admins)."""
        raw = await self.redis.hgetall(self.keys.sub(sub_id))
        if not raw or (tenant is not None and raw.get("tenant") != tenant):
            raise SubscriptionNotFound(sub_id)
        return Subscription.from_hash(raw)

    async def save(self, sub: Subscription) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.sub(sub.id), mapping=sub.to_hash())
            pipe.incr(self.keys.version)
            await pipe.execute()

    async def delete(self, sub: Subscription) -> None:
        k = self.keys
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(k.sub(sub.id), k.due(sub.id), k.failed(sub.id), k.log(sub.id))
            pipe.zrem(k.subs, sub.id)
            pipe.zrem(k.ready, sub.id)
            pipe.srem(k.tenant(sub.tenant), sub.id)
            pipe.incr(k.version)
            await pipe.execute()

    async def list(self, tenant: str | None) -> list[Subscription]:
        if tenant is None:
            ids = await self.redis.zrange(self.keys.subs, 0, -1)
        else:
            ids = sorted(await self.redis.smembers(self.keys.tenant(tenant)))
        return await self.records(ids)

    async def of_tenant(self, tenant: str) -> list[Subscription]:
        return await self.records(await self.redis.smembers(self.keys.tenant(tenant)))

    async def records(self, ids) -> list[Subscription]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for sub_id in ids:
                pipe.hgetall(self.keys.sub(sub_id))
            raws = await pipe.execute()
        subs = [Subscription.from_hash(raw) for raw in raws if raw]
        return sorted(subs, key=lambda s: s.created_at)

    async def rotate(self, sub: Subscription, overlap_s: float) -> Subscription:
        sub.old_secret, sub.old_until = sub.secret, time.time() + overlap_s
        sub.secret = new_secret()
        await self.save(sub)
        return sub

    # --- deliveries -------------------------------------------------------------------

    async def enqueue(self, sub: Subscription, envelope: dict[str, Any], now: float) -> bool:
        """A delivery of `envelope` to `sub`, due now (False: it already exists)."""
        body = json.dumps(envelope, separators=(",", ":"))
        args = (sub.id, envelope["id"], body, repr(now), int(self.retention_s), "0")
        return bool(await self._enqueue(sub.id, envelope["id"], args))

    async def redeliver(self, sub: Subscription, event_id: str) -> bool:
        """Send a delivery again (a failed one, or one that succeeded): due now."""
        raw = await self.redis.hget(self.keys.delivery(sub.id, event_id), "event")
        if raw is None:
            return False
        args = (sub.id, event_id, raw, repr(time.time()), int(self.retention_s), "1")
        await self._enqueue(sub.id, event_id, args)
        return True

    async def _enqueue(self, sub_id: str, event_id: str, args: tuple) -> Any:
        keys = self.keys.enqueue(sub_id, event_id)
        return await self._enqueue_script(keys=keys, args=args)

    async def deliveries(
        self, sub: Subscription, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The attempts log, newest first (event, attempt, status code, latency, next try)."""
        upper = f"({cursor}" if cursor else "+"
        rows = await self.redis.xrevrange(self.keys.log(sub.id), upper, "-", count=limit)
        out = []
        for entry_id, f in rows:
            out.append(
                {
                    "seq": entry_id,
                    "time": float(f["time"]),
                    "event_id": f["event_id"],
                    "event_type": f["event_type"],
                    "attempt": int(f["attempt"]),
                    "status_code": int(f["status_code"]) if f.get("status_code") else None,
                    "latency_ms": float(f["latency_ms"]) if f.get("latency_ms") else None,
                    "outcome": f["outcome"],
                    "error": f.get("error") or None,
                    "next_try": float(f["next_try"]) if f.get("next_try") else None,
                }
            )
        return out, (rows[-1][0] if len(rows) == limit else None)

    async def delivery(self, sub: Subscription, event_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(self.keys.delivery(sub.id, event_id))
        if not raw:
            return None
        return {
            "event_id": event_id,
            "status": raw.get("status"),
            "attempts": int(raw.get("attempts") or 0),
            "event": json.loads(raw["event"]),
            "next_try": float(raw["next_at"]) if raw.get("next_at") else None,
            "last_status_code": int(raw["code"]) if raw.get("code") else None,
            "last_error": raw.get("error") or None,
        }

    async def failed(self, sub: Subscription, limit: int = 100) -> list[str]:
        return await self.redis.zrevrange(self.keys.failed(sub.id), 0, limit - 1)


# A Lua function (the fan-out script includes it): a delivery of one event to
# one subscription, due now; `again` ("1") sends one that exists again. Its
# keys: the delivery, the subscription's due and failed sets, and `ready`
# (WebhookKeys.enqueue). Returns 1 when queued, 0 when it existed.
LUA_ENQUEUE = """
local function enqueue(dlv, due, failed, ready, sub, event_id, envelope, now, retention, again)
  local exists = redis.call('EXISTS', dlv) == 1
  if exists and again ~= '1' then return 0 end
  redis.call('HSET', dlv, 'sub', sub, 'event_id', event_id, 'event', envelope,
             'status', 'pending', 'first_at', now, 'next_at', now)
  if not exists then redis.call('HSET', dlv, 'attempts', 0, 'created_at', now) end
  redis.call('EXPIRE', dlv, retention)
  redis.call('ZREM', failed, event_id)
  redis.call('ZADD', due, now, event_id)
  local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
  redis.call('ZADD', ready, first[2], sub)
  return 1
end
"""

# KEYS: as enqueue's. ARGV: sub id, event id, envelope, now, retention s, again.
_ENQUEUE = LUA_ENQUEUE + "\nreturn enqueue(KEYS[1], KEYS[2], KEYS[3], KEYS[4], unpack(ARGV))\n"
