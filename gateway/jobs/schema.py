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

from gateway import events
from gateway.redis_client import PREFIX, prefix_for

CANCEL_CHANNEL = PREFIX + "cancel"  # pub/sub (a channel, no key: the same on a cluster)


@dataclass(frozen=True)
class KeySchema:
    """The key names under one prefix. Builders called with "" give a key
    family's prefix (what a script appends data to)."""

    prefix: str = PREFIX

    @classmethod
    def for_client(cls, redis) -> KeySchema:
        return cls(prefix_for(redis))

    # --- one task ---------------------------------------------------------------------
    def task(self, task_id: str) -> str:
        """hash: the task record (expires after the task TTL)."""
        return f"{self.prefix}task:{task_id}"

    def input(self, task_id: str) -> str:
        """the serialized gRPC request (upload included), deleted when the task ends."""
        return f"{self.prefix}input:{task_id}"

    def events(self, task_id: str) -> str:
        """stream of status / progress / frame events (SSE reads it)."""
        return f"{self.prefix}events:{task_id}"

    def frames(self, task_id: str) -> str:
        """hash frame_index -> frame result while a video runs."""
        return f"{self.prefix}frames:{task_id}"

    def gone(self, task_id: str) -> str:
        """tombstone outliving the record, so an expired id is 410."""
        return f"{self.prefix}gone:{task_id}"

    def preview(self, task_id: str) -> str:
        """a finished image task's request, kept a while for the console."""
        return f"{self.prefix}preview:{task_id}"

    def idem(self, tenant: str, idempotency_key: str) -> str:
        """Idempotency-Key -> "task id|request hash"."""
        return f"{self.prefix}idem:{tenant}:{idempotency_key}"

    # --- queues -----------------------------------------------------------------------
    def queue(self, kind_id: str) -> str:
        """stream per task kind (`kind:media`), read through one consumer group."""
        return f"{self.prefix}queue:{kind_id}"

    def kind_of_queue(self, queue: str) -> str:
        return queue.removeprefix(self.queue(""))

    @property
    def inline(self) -> str:
        """sorted set of simple-mode tasks, scored by when they must have ended."""
        return f"{self.prefix}inline"

    # --- list indexes (sorted sets of ids by creation time) ---------------------------
    @property
    def index(self) -> str:
        return f"{self.prefix}tasks"

    def by_status(self, status: str) -> str:
        return f"{self.index}:status:{status}"

    def by_kind(self, kind: str) -> str:
        return f"{self.index}:kind:{kind}"

    def by_tenant(self, tenant: str) -> str:
        return f"{self.index}:tenant:{tenant}"

    def live(self, status: str, kind_id: str) -> str:
        """The queued (or running) tasks of one kind, kept with the status: the queue figures."""
        return f"{self.index}:live:{status}:{kind_id}"

    @property
    def live_indexed(self) -> str:
        """Marker: the live indexes were filled (not under `tasks`: pruning reads those)."""
        return f"{self.prefix}live-indexed"

    # --- statistics and quotas --------------------------------------------------------
    def stats(self, kind_id: str, minute: int) -> str:
        """per-minute counts and run/wait histograms of one kind (kept 26 h)."""
        return f"{self.stats_family}{kind_id}:{minute}"

    @property
    def stats_family(self) -> str:
        """What stats() names start with (a script appends `kind:media:minute`)."""
        return f"{self.prefix}stats:"

    def usage(self, key_id: str) -> str:
        """hash: an API key's tasks, upload bytes and videos in flight."""
        return f"{self.prefix}usage:{key_id}"

    @property
    def usage_all(self) -> str:
        """hash: upload bytes queued in all (GATEWAY_MAX_QUEUED_BYTES)."""
        return self.usage("all")

    # --- previews ---------------------------------------------------------------------
    @property
    def previews(self) -> str:
        """sorted set of kept previews' ids by when kept."""
        return f"{self.prefix}previews"

    def previews_of(self, tenant: str) -> str:
        return f"{self.previews}:tenant:{tenant}"

    @property
    def preview_sizes(self) -> str:
        """hash id -> "bytes|tenant" (what Redis holds: MEMORY USAGE)."""
        return f"{self.previews}:sizes"

    @property
    def preview_bytes(self) -> str:
        """hash: `all` and `t:{tenant}` -> the bytes kept."""
        return f"{self.previews}:bytes"

    # --- the event log a finish publishes to (gateway/events.py) ----------------------
    def evlog(self, tenant: str) -> str:
        return events.log_key(tenant, self.prefix)

    @property
    def evlog_all(self) -> str:
        return events.all_log_key(self.prefix)

    @property
    def outbox(self) -> str:
        return events.outbox_key(self.prefix)

    # --- placeholders -------------------------------------------------------------------
    @property
    def none(self) -> str:
        """Stands for an optional key a script is not given (never written):
        an empty name would hash to another slot of a cluster."""
        return f"{self.prefix}none"


PLAIN = KeySchema()
