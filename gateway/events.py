"""Events out: one durable log per tenant, and the outbox that pushes them.

Anything Percept tells the outside world (a task ended, a source changed
state, a track started, ...) is published here, once, atomically (one Lua
script) into:

- `percept:evlog:{tenant}`  the tenant's event log (a stream: `GET /api/events`
  and the SSE stream read it), bounded by GATEWAY_EVENTS_MAXLEN entries and
  GATEWAY_EVENTS_MAX_AGE_S seconds;
- `percept:evlog`           the same for all tenants together (admins), bounded
  at ten times the per-tenant length;
- `percept:outbox`          the delivery outbox, read by the webhook and MQTT
  publishers through consumer groups (gateway/webhooks.py, gateway/mqtt.py);
  bounded by GATEWAY_EVENTS_OUTBOX_MAXLEN (the oldest undelivered are dropped
  past it, and counted in the log).

An event's envelope: {"id": "evt_<hex>", "type", "tenant", "time" (Unix
seconds), "seq" (its position in the tenant's log: a Redis stream id, which
orders a tenant's events), "data"}. Source events' data carries "source_id";
task events' data carries "task_id", "kind", "media", "status" and the
record's times (not the result: fetch GET /api/task/{task_id}).

This module imports redis only (no web framework), so a process that only
watches sources can publish.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import weakref
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from gateway.redis_client import Key, Names, text

EVENT_TYPES: tuple[str, ...] = (
    "task.succeeded",
    "task.failed",
    "task.cancelled",
    "source.state_changed",
    "track.started",
    "track.ended",
    "zone.entered",
    "zone.left",
    "line.crossed",
    "face.identified",
)
TASK_EVENT_TYPES = EVENT_TYPES[:3]
SOURCE_EVENT_TYPES = EVENT_TYPES[3:]

DEFAULT_MAXLEN = 10_000
DEFAULT_MAX_AGE_S = 7 * 86_400
DEFAULT_OUTBOX_MAXLEN = 200_000


class EventKeys(Names):
    """The log's keys under one prefix (the job table's KeySchema has them too:
    its finish publishes a task's end)."""

    evlog = Key("evlog")  # (tenant): one tenant's log
    evlog_all = Key("evlog", family=False)  # every tenant's log (admins read it)
    outbox = Key("outbox", family=False)  # what the webhooks and MQTT read


# --- the outbox's readers ----------------------------------------------------------------

WEBHOOK_GROUP, MQTT_GROUP = "webhooks", "mqtt"  # its consumer groups


def outbox_of(redis) -> str:
    """The outbox's name on this client (tagged on a cluster)."""
    return EventKeys.for_client(redis).outbox


async def ensure_group(redis, group: str) -> None:
    """Create the outbox's consumer group `group` (reading from the start)
    unless it exists: the webhook fan-out's and the MQTT publisher's."""
    try:
        await redis.xgroup_create(outbox_of(redis), group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


@dataclass(frozen=True)
class Retention:
    """How much of the log is kept: entries per tenant, seconds, outbox entries."""

    maxlen: int = DEFAULT_MAXLEN
    max_age_s: int = DEFAULT_MAX_AGE_S
    outbox_maxlen: int = DEFAULT_OUTBOX_MAXLEN

    @classmethod
    def from_env(cls) -> Retention:
        """From GATEWAY_EVENTS_MAXLEN, GATEWAY_EVENTS_MAX_AGE_S and
        GATEWAY_EVENTS_OUTBOX_MAXLEN (gateway/settings.py documents them), so a
        process without the gateway's settings publishes with the same bounds."""
        env = os.environ
        return cls(
            max(1, int(env.get("GATEWAY_EVENTS_MAXLEN", DEFAULT_MAXLEN))),
            max(1, int(env.get("GATEWAY_EVENTS_MAX_AGE_S", DEFAULT_MAX_AGE_S))),
            max(1, int(env.get("GATEWAY_EVENTS_OUTBOX_MAXLEN", DEFAULT_OUTBOX_MAXLEN))),
        )

    def args(self) -> list[int]:
        return [self.maxlen, self.max_age_s, self.outbox_maxlen]


# A Lua function other scripts include (gateway/jobs' finish publishes a
# task's end in the same script that ends it), given its keys: the tenant's
# log, all tenants' log and the outbox. `data` is a JSON object's text; `now`
# Unix seconds as text. Returns the tenant log's stream id (seq).
LUA_PUBLISH = """
local function publish_event(log, all_log, outbox, tenant, etype, id, now, data, maxlen,
                             max_age_s, outbox_maxlen)
  maxlen = tonumber(maxlen)
  local minid = tostring(math.max(0, math.floor((tonumber(now) - tonumber(max_age_s)) * 1000)))
  local seq = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'id', id, 'type', etype,
                         'tenant', tenant, 'time', now, 'data', data)
  redis.call('XTRIM', log, 'MINID', '~', minid)
  redis.call('XADD', all_log, 'MAXLEN', '~', maxlen * 10, '*', 'id', id, 'type', etype,
             'tenant', tenant, 'time', now, 'data', data, 'seq', seq)
  redis.call('XTRIM', all_log, 'MINID', '~', minid)
  local envelope = '{"id": ' .. cjson.encode(id) .. ', "type": ' .. cjson.encode(etype) ..
    ', "tenant": ' .. cjson.encode(tenant) .. ', "time": ' .. now .. ', "seq": "' .. seq ..
    '", "data": ' .. data .. '}'
  redis.call('XADD', outbox, 'MAXLEN', '~', tonumber(outbox_maxlen), '*',
             'tenant', tenant, 'type', etype, 'e', envelope)
  return seq
end
"""

# KEYS: the tenant's log, all tenants' log, the outbox. ARGV: tenant, type, id,
# now, data json, maxlen, max age, outbox maxlen.
_PUBLISH = LUA_PUBLISH + "\nreturn publish_event(KEYS[1], KEYS[2], KEYS[3], unpack(ARGV))\n"


@dataclass(frozen=True)
class _Publisher:
    """What `publish` needs of one client, made at its first event: the script,
    the key names (tagged on a cluster) and the retention (read from the
    environment once: the source worker publishes an event per crossing)."""

    script: Any
    keys: EventKeys
    retention: list[int]


_publishers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def new_id() -> str:
    return "evt_" + secrets.token_hex(12)


def check_type(type: str) -> None:
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}; one of {', '.join(EVENT_TYPES)}")


async def publish(redis, tenant: str, type: str, data: dict) -> str:
    """Append one event to `tenant`'s log and to the outbox, atomically; returns its id.

    `redis`: a redis.asyncio client (decoded or not)."""
    check_type(type)
    if type in SOURCE_EVENT_TYPES and "source_id" not in data:
        raise ValueError(f"a {type} event's data must carry source_id")
    made = _publishers.get(redis)
    if made is None:
        made = _publishers[redis] = _Publisher(
            redis.register_script(_PUBLISH),
            EventKeys.for_client(redis),
            Retention.from_env().args(),
        )
    event_id = new_id()
    keys = made.keys
    await made.script(
        keys=[keys.evlog(tenant), keys.evlog_all, keys.outbox],
        args=[
            tenant,
            type,
            event_id,
            repr(time.time()),
            json.dumps(data, separators=(",", ":")),
            *made.retention,
        ],
    )
    return event_id


# --- reading ---------------------------------------------------------------------------


def envelope(entry_id: Any, fields: dict) -> dict[str, Any]:
    """A log entry as the API shows it (the outbox's envelope, seq included)."""
    f = {text(k): text(v) for k, v in fields.items()}
    return {
        "id": f["id"],
        "type": f["type"],
        "tenant": f["tenant"],
        "time": float(f["time"]),
        "seq": f.get("seq") or text(entry_id),
        "data": json.loads(f["data"]),
    }


@dataclass(frozen=True)
class Filters:
    types: frozenset[str] = frozenset()
    source_id: str | None = None
    task_id: str | None = None

    def match(self, event: dict[str, Any]) -> bool:
        if self.types and event["type"] not in self.types:
            return False
        data = event["data"]
        if self.source_id is not None and data.get("source_id") != self.source_id:
            return False
        return self.task_id is None or data.get("task_id") == self.task_id


def stream_of(tenant: str | None, redis=None) -> str:
    """The log a caller reads: its tenant's, or all tenants' (None: an admin);
    named for `redis` (tagged on a cluster: gateway/redis_client.py)."""
    keys = EventKeys() if redis is None else EventKeys.for_client(redis)
    return keys.evlog_all if tenant is None else keys.evlog(tenant)


async def page(
    redis,
    tenant: str | None,
    filters: Filters,
    *,
    limit: int,
    cursor: str | None = None,
    since: float | None = None,
    scan_cap: int = 5_000,
) -> tuple[list[tuple[str, dict]], str | None]:
    """Newest first: events older than `cursor` (a log position) and not before
    `since` (Unix seconds) that match. Returns (position, envelope) pairs and
    the cursor of the next page (None: no more). At most `scan_cap` entries are
    read per call; a sparse filter then returns a short page with a cursor."""
    key = stream_of(tenant, redis)
    upper = f"({cursor}" if cursor else "+"
    lower = str(int(min(since, 1e15) * 1000)) if since else "-"  # (a stream id is u64 ms)
    found: list[tuple[str, dict]] = []
    scanned = 0
    while scanned < scan_cap:
        rows = await redis.xrevrange(key, upper, lower, count=min(500, scan_cap - scanned))
        if not rows:
            return found, None
        for entry_id, fields in rows:
            entry_id = text(entry_id)
            upper = f"({entry_id}"
            scanned += 1
            event = envelope(entry_id, fields)
            if filters.match(event):
                found.append((entry_id, event))
                if len(found) == limit:
                    return found, entry_id
    return found, upper[1:] if upper != "+" else None


async def follow(
    redis, tenant: str | None, after: str, block_ms: int, count: int = 100
) -> list[tuple[str, dict]]:
    """Events after position `after` ("$": only new ones), waiting up to block_ms."""
    reply = await redis.xread({stream_of(tenant, redis): after}, count=count, block=block_ms)
    out = []
    for _stream, entries in reply or ():
        for entry_id, fields in entries:
            out.append((text(entry_id), envelope(entry_id, fields)))
    return out


async def last_position(redis, tenant: str | None) -> str:
    """The newest position in a log ("0" when empty): a live stream starts after it."""
    rows = await redis.xrevrange(stream_of(tenant, redis), "+", "-", count=1)
    return text(rows[0][0]) if rows else "0"
