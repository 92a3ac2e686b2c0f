"""Every Redis key of the job table, named here and nowhere else.

The Lua scripts name no key: each gets the keys it touches in KEYS. Where a
key is named by data the script itself reads from Redis (the record's kind,
status, tenant or quota key; the id of a preview dropped to make room), the
script gets that key family's prefix in KEYS (a builder given "" names it)
and appends the data, so the names and their hash tag are still made here only; naming
those keys in Python would take a read before the script, another round trip
and a race with it.

On Redis Cluster every key of the table (and the event log its finish writes)
carries one hash tag, `{percept}`: one slot holds the whole table, so every
script (a submit touches the record, the queue, the indexes and the
statistics; a finish the previews and event logs of any tenant) runs on one
node. The trade-off: the job table does not spread over the cluster's nodes
(its throughput is one node's), while everything else stored in the same
cluster does. Per-tenant tags would spread it but cannot serve the table's
global keys (the queues every tenant shares, the list indexes, the preview and
queued-bytes budgets) from one script. On a single Redis or behind Sentinel
the names carry no tag (`percept:task:<id>`), as they always have, so an
existing data set stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import events
from gateway.redis_client import PREFIX, prefix_for

CANCEL_CHANNEL = PREFIX + "cancel"  # pub/sub (a channel, no key: the same on a cluster)


class _Key:
    """A key name under the schema's prefix, `<prefix><name>`, or a family of
    them, `<prefix><name>:<part>[:<part>...]` (`keys.task(task_id)`,
    `keys.live(status, kind_id)`). A family given one "" part names what its
    members start with: the prefix a script appends the data it reads to."""

    def __init__(self, name: str, *, family: bool = True) -> None:
        self.name = name
        self.family = family

    def __get__(self, schema: KeySchema | None, owner: type) -> Any:
        if schema is None:
            return self
        base = schema.prefix + self.name
        if not self.family:
            return base
        return lambda *parts: f"{base}:{':'.join(map(str, parts))}"


@dataclass(frozen=True)
class KeySchema:
    """The key names under one prefix: every key of the job table."""

    prefix: str = PREFIX

    @classmethod
    def for_client(cls, redis) -> KeySchema:
        return cls(prefix_for(redis))

    # --- one task (by its id)
    task = _Key("task")  # hash: the task record (expires after the task TTL)
    input = _Key("input")  # the serialized gRPC request, deleted when the task ends
    events = _Key("events")  # stream of status / progress / frame events (SSE reads it)
    frames = _Key("frames")  # hash frame_index -> frame result while a video runs
    gone = _Key("gone")  # tombstone outliving the record, so an expired id is 410
    preview = _Key("preview")  # a finished image task's request, kept for the console
    idem = _Key("idem")  # (tenant, Idempotency-Key) -> "task id|request hash"

    # --- queues
    queue = _Key("queue")  # stream per kind (`kind:media`), read through one consumer group
    inline = _Key("inline", family=False)  # simple-mode tasks by when they must have ended

    # --- list indexes: sorted sets of ids by creation time
    index = _Key("tasks", family=False)  # all tasks
    by_status = _Key("tasks:status")
    by_kind = _Key("tasks:kind")
    by_tenant = _Key("tasks:tenant")
    live = _Key("tasks:live")  # (status, kind_id): the queued / running tasks of a kind
    live_indexed = _Key("live-indexed", family=False)  # marker: the live indexes were filled

    # --- statistics and quotas
    stats = _Key("stats")  # (kind_id, minute): counts and run/wait histograms, kept 26 h
    usage = _Key("usage")  # hash: an API key's tasks, upload bytes and videos in flight
    usage_all = _Key("usage:all", family=False)  # hash: upload bytes queued in all

    # --- previews
    previews = _Key("previews", family=False)  # sorted set of kept previews' ids by when kept
    previews_of = _Key("previews:tenant")  # the same, one tenant's
    preview_sizes = _Key("previews:sizes", family=False)  # hash id -> "bytes|tenant"
    preview_bytes = _Key("previews:bytes", family=False)  # hash `all`, `t:{tenant}` -> bytes

    # stands for an optional key a script is not given (never written): an
    # empty name would hash to another slot of a cluster
    none = _Key("none", family=False)

    def kind_of_queue(self, queue: str) -> str:
        return queue.removeprefix(self.queue(""))

    # --- the event log a finish publishes to (gateway/events.py names it)
    def evlog(self, tenant: str) -> str:
        return events.log_key(tenant, self.prefix)

    @property
    def evlog_all(self) -> str:
        return events.all_log_key(self.prefix)

    @property
    def outbox(self) -> str:
        return events.outbox_key(self.prefix)


PLAIN = KeySchema()
