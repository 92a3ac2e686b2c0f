"""The Redis job table: task records, their inputs, events, queues and leases.

One key schema (`schema.py`) names every key; the Lua scripts (`lua/`) are
given theirs in KEYS, so the table runs on a single Redis, behind Sentinel,
or on Redis Cluster (gateway/redis_client.py). The modules, by concern:
`records` (the task record and its JSON), `queue` (streams, leases, starts),
`index` (reading, listing, searching), `statistics` (the console's figures),
`previews`, `quotas`, `replication` (WAIT), `scripts` (the Lua loader) and
`store` (JobStore, the one object the gateway holds).
"""

from gateway.jobs.previews import PREVIEW_BYTES
from gateway.jobs.queue import GROUP, MAX_BLOCK_MS
from gateway.jobs.records import (
    DEFAULT_TENANT,
    TERMINAL,
    Claimed,
    Event,
    Started,
    Status,
    Task,
)
from gateway.jobs.schema import CANCEL_CHANNEL, PREFIX, KeySchema
from gateway.jobs.store import BIG_WRITE_BYTES, BIG_WRITES, SOCKET_TIMEOUT_S, JobStore

__all__ = [
    "BIG_WRITES",
    "BIG_WRITE_BYTES",
    "CANCEL_CHANNEL",
    "DEFAULT_TENANT",
    "GROUP",
    "MAX_BLOCK_MS",
    "PREFIX",
    "PREVIEW_BYTES",
    "SOCKET_TIMEOUT_S",
    "TERMINAL",
    "Claimed",
    "Event",
    "JobStore",
    "KeySchema",
    "Started",
    "Status",
    "Task",
]
