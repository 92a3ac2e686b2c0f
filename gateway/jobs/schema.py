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
existing data set stays readable. The other stores name their keys the same
way (gateway/redis_client.py's `Names`), under the same tag on a cluster.
"""

from __future__ import annotations

from gateway.events import EventKeys
from gateway.redis_client import PREFIX, Key

CANCEL_CHANNEL = PREFIX + "cancel"  # pub/sub (a channel, no key: the same on a cluster)


class KeySchema(EventKeys):
    """The key names under one prefix: every key of the job table, and (from
    EventKeys) the event log a finish publishes to."""

    # --- one task (by its id)
    task = Key("task")  # hash: the task record (expires after the task TTL)
    input = Key("input")  # the serialized gRPC request, deleted when the task ends
    events = Key("events")  # stream of status / progress / frame events (SSE reads it)
    frames = Key("frames")  # hash frame_index -> frame result while a video runs
    gone = Key("gone")  # tombstone outliving the record, so an expired id is 410
    preview = Key("preview")  # a finished image task's request, kept for the console
    idem = Key("idem")  # (tenant, Idempotency-Key) -> "task id|request hash"

    # --- queues
    queue = Key("queue")  # stream per kind (`kind:media`), read through one consumer group
    inline = Key("inline", family=False)  # simple-mode tasks by when they must have ended

    # --- list indexes: sorted sets of ids by creation time
    index = Key("tasks", family=False)  # all tasks
    by_status = Key("tasks:status")
    by_kind = Key("tasks:kind")
    by_tenant = Key("tasks:tenant")
    live = Key("tasks:live")  # (status, kind_id): the queued / running tasks of a kind
    live_indexed = Key("live-indexed", family=False)  # marker: the live indexes were filled

    # --- statistics and quotas
    stats = Key("stats")  # (kind_id, minute): counts and run/wait histograms, kept 26 h
    usage = Key("usage")  # hash: an API key's tasks, upload bytes and videos in flight
    usage_all = Key("usage:all", family=False)  # hash: upload bytes queued in all

    # --- previews
    previews = Key("previews", family=False)  # sorted set of kept previews' ids by when kept
    previews_of = Key("previews:tenant")  # the same, one tenant's
    preview_sizes = Key("previews:sizes", family=False)  # hash id -> "bytes|tenant"
    preview_bytes = Key("previews:bytes", family=False)  # hash `all`, `t:{tenant}` -> bytes

    # stands for an optional key a script is not given (never written): an
    # empty name would hash to another slot of a cluster
    none = Key("none", family=False)

    def kind_of_queue(self, queue: str) -> str:
        return queue.removeprefix(self.queue(""))


PLAIN = KeySchema()
