"""The Redis job table: task records, their inputs, events, queues and leases.

Layout (prefix `percept:`):
- `task:{id}`     hash: the task record (expires after the task TTL);
- `input:{id}`    the serialized gRPC request (upload included), deleted when
                  the task ends: stored once, handed to gRPC as it is;
- `events:{id}`   stream of status / progress / frame events (SSE reads it);
- `frames:{id}`   hash frame_index -> frame result while a video runs;
- `gone:{id}`     tombstone outliving the record, so an expired id is 410;
- `idem:{tenant}:{key}`  Idempotency-Key -> "task id|request hash";
- `tasks`, `tasks:status:{s}`, `tasks:kind:{k}`, `tasks:tenant:{t}`  sorted
                  sets of ids by creation time: listing reads the most
                  selective one, however many tasks there are;
- `tasks:live:{s}:{kind}:{media}`  the same for the queued and the running
                  tasks of each kind: the queue figures (queue_stats) are read
                  from the records' own status, never from a consumer group;
- `stats:{kind}:{media}:{minute}`  per-minute counts and run/wait histograms
                  (kept 26 h): the console's charts survive gateway restarts;
- `preview:{id}`  a finished image task's request (its upload inside), kept a
                  while (GATEWAY_KEEP_INPUT_S) for the console to draw on;
                  `previews` lists them, so at most GATEWAY_KEEP_INPUT_MAX;
- `inline`        sorted set of tasks run by an API process in simple mode,
                  scored by when they must have ended (a crashed process's
                  tasks are then failed, not left running);
- `queue:{kind}:{media}`  stream per task kind, read by dispatchers through
  one consumer group; an entry is acknowledged (and deleted) when its task
  ends, and one idle past the lease is claimed by another dispatcher.

Every state change is one Lua script, so a submit, a start and a finish are
one round trip each, and cancel, finish and retry cannot overwrite each other.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.errors import ApiError, TaskGone, TaskNotFound
from gateway.events import LUA_PUBLISH, Retention
from gateway.stats import BOUNDS_MS

if TYPE_CHECKING:
    from gateway.keys import Limits

PREFIX = "percept:"
GROUP = "dispatchers"
CANCEL_CHANNEL = PREFIX + "cancel"
SOCKET_TIMEOUT_S = 30.0
MAX_BLOCK_MS = 10_000  # every blocking read stays well under the socket timeout
DEFAULT_TENANT = "default"


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

# Shared Lua: the list indexes (all tasks, and by status, kind and tenant,
# scored by creation time) and the per-minute statistics the console charts
# (counts by outcome; run and wait times as histogram buckets, milliseconds).
_LIB = (
    f"local P = '{PREFIX}'\n"
    f"local BOUNDS = {{{', '.join(map(str, BOUNDS_MS))}}}\n"  # gateway/stats.py reads them back
    + """local LIVE = {queued = true, running = true}
-- tasks:live:{status}:{kind}:{media}: the queued and the running tasks of each
-- kind, kept with the status (the queue figures of /api/stats and /metrics)
local function live(id, created, from, to)
  if not (LIVE[from] or LIVE[to]) then return end
  local t = redis.call('HMGET', P .. 'task:' .. id, 'kind', 'media')
  if not t[1] then return end
  local of = ':' .. t[1] .. ':' .. t[2]
  if LIVE[from] then redis.call('ZREM', P .. 'tasks:live:' .. from .. of, id) end
  if LIVE[to] then redis.call('ZADD', P .. 'tasks:live:' .. to .. of, created, id) end
end
local function index(id, created, kind, tenant, status)
  redis.call('ZADD', P .. 'tasks', created, id)
  redis.call('ZADD', P .. 'tasks:kind:' .. kind, created, id)
  redis.call('ZADD', P .. 'tasks:tenant:' .. tenant, created, id)
  redis.call('ZADD', P .. 'tasks:status:' .. status, created, id)
  live(id, created, '', status)
end
local function move(id, created, from, to)
  if from and from ~= '' then redis.call('ZREM', P .. 'tasks:status:' .. from, id) end
  redis.call('ZADD', P .. 'tasks:status:' .. to, created, id)
  live(id, created, from or '', to)
end
local function bucket(ms)
  for i, b in ipairs(BOUNDS) do if ms <= b then return i end end
  return #BOUNDS + 1
end
local function stat(kind, media, now, field, n)
  local key = P .. 'stats:' .. kind .. ':' .. media .. ':' .. math.floor(now / 60)
  redis.call('HINCRBY', key, field, n or 1)
  redis.call('EXPIRE', key, 93600)
  return key
end
"""
)

# KEYS: task, input, tombstone, unused, events, queue, idem (or ""), inline index.
# ARGV: ttl, tombstone ttl, id, kind, media, options, now, expires_at, input,
#       tenant, request hash, mode ("queued" | "inline"), inline deadline,
#       counted key id (or ""), its limits on tasks, bytes and videos in flight
#       (0: none), the cap on upload bytes queued in all (0: none), the key id,
#       "1" when the task's upload must never be kept (a private kind).
# Returns {1, id} created, {0, id} the same request under this key (or a given
# id whose record exists), {-1, id} a different request under this key, {-2,
# limit, in use} a key's limit reached, {-3, 'queued_bytes', in use} the
# global cap on queued upload bytes reached. What a task counts against the
# limits (q_key, q_video, input_bytes) is released when it ends (_FINISH).
_SUBMIT = (
    _LIB
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, ARGV[3]} end
if KEYS[7] ~= '' then
  local existing = redis.call('GET', KEYS[7])
  if existing then
    local sep = string.find(existing, '|', 1, true)
    local id = string.sub(existing, 1, sep - 1)
    if string.sub(existing, sep + 1) ~= ARGV[11] then return {-1, id} end
    if redis.call('EXISTS', P .. 'task:' .. id) == 1 then return {0, id} end
  end
end
local inline = ARGV[12] == 'inline'
local status = inline and 'running' or 'queued'
local size = inline and 0 or string.len(ARGV[9])
local video = ARGV[5] == 'video' and 1 or 0
if tonumber(ARGV[18]) > 0 and size > 0 then
  local all = tonumber(redis.call('HGET', P .. 'usage:all', 'bytes') or '0')
  if all + size > tonumber(ARGV[18]) then return {-3, 'queued_bytes', all} end
end
local key = ARGV[14]
if key ~= '' then
  local u = redis.call('HMGET', P .. 'usage:' .. key, 'tasks', 'bytes', 'videos')
  local tasks, bytes, videos = tonumber(u[1]) or 0, tonumber(u[2]) or 0, tonumber(u[3]) or 0
  if tonumber(ARGV[15]) > 0 and tasks + 1 > tonumber(ARGV[15]) then return {-2, 'tasks', tasks} end
  if tonumber(ARGV[16]) > 0 and bytes + size > tonumber(ARGV[16]) then return {-2, 'bytes', bytes} end
  if tonumber(ARGV[17]) > 0 and video == 1 and videos + 1 > tonumber(ARGV[17]) then
    return {-2, 'videos', videos}
  end
  redis.call('HINCRBY', P .. 'usage:' .. key, 'tasks', 1)
  redis.call('HINCRBY', P .. 'usage:' .. key, 'bytes', size)
  redis.call('HINCRBY', P .. 'usage:' .. key, 'videos', video)
  redis.call('HSET', KEYS[1], 'q_key', key, 'q_video', video)
end
if size > 0 then redis.call('HINCRBY', P .. 'usage:all', 'bytes', size) end
redis.call('HSET', KEYS[1], 'id', ARGV[3], 'kind', ARGV[4], 'media', ARGV[5],
           'options', ARGV[6], 'created_at', ARGV[7], 'expires_at', ARGV[8],
           'tenant', ARGV[10], 'mode', ARGV[12], 'input_bytes', size, 'key_id', ARGV[19],
           'private', ARGV[20], 'status', status, 'attempts', inline and 1 or 0)
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('SET', KEYS[3], '1', 'EX', ARGV[2])
index(ARGV[3], ARGV[7], ARGV[4], ARGV[10], status)
stat(ARGV[4], ARGV[5], tonumber(ARGV[7]), 'submitted')
if inline then
  redis.call('HSET', KEYS[1], 'started_at', ARGV[7])
  redis.call('XADD', KEYS[5], '*', 'type', 'status', 'data', '{"status": "running"}')
  redis.call('ZADD', KEYS[8], ARGV[13], ARGV[3])
else
  redis.call('SET', KEYS[2], ARGV[9], 'EX', ARGV[1])
  redis.call('XADD', KEYS[5], '*', 'type', 'status', 'data', '{"status": "queued"}')
  redis.call('XADD', KEYS[6], '*', 'task_id', ARGV[3])
end
redis.call('EXPIRE', KEYS[5], ARGV[1])
if KEYS[7] ~= '' then redis.call('SET', KEYS[7], ARGV[3] .. '|' .. ARGV[11], 'EX', ARGV[1]) end
return {1, ARGV[3]}
"""
)

# KEYS: task, events, input. ARGV: now, max attempts.
# Returns {1, attempts, input, created_at, tenant} to run, {0} when the task is no
# longer runnable, {-1, attempts} when its attempts are spent, {-2} when its
# input is gone.
_START = (
    _LIB
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then return {0} end
local data = redis.call('GET', KEYS[3])
if not data then return {-2} end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > tonumber(ARGV[2]) then return {-1, attempts - 1} end
local id = redis.call('HGET', KEYS[1], 'id')
local created = redis.call('HGET', KEYS[1], 'created_at')
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running')
  move(id, created, 'queued', 'running')
end
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[1])
redis.call('XADD', KEYS[2], '*', 'type', 'status', 'data', '{"status": "running"}')
return {1, attempts, data, created, redis.call('HGET', KEYS[1], 'tenant') or ''}
"""
)

# KEYS: task. ARGV: none. A dispatcher shutting down hands a running task back.
_REQUEUE = (
    _LIB
    + """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued')
move(redis.call('HGET', KEYS[1], 'id'), redis.call('HGET', KEYS[1], 'created_at'),
     'running', 'queued')
return 1
"""
)

# KEYS: task, events, input, frames, queue (or ""), inline index, tombstone,
#       preview, previews list.
# ARGV: allowed statuses (csv), new status, event json, queue entry id (or ""),
#       group, task id, ttl, tombstone ttl, now, preview ttl (0: keep none),
#       most previews kept, preview bytes (simple mode: the request; else ""),
#       n, then n create field/value pairs, then the final field/value pairs,
#       then the event log's retention (gateway/events.py: 3 values).
# Ends a task in an allowed status; a task with no record yet (simple mode
# records a task once, when it ends) is created whole when create pairs are
# given. Keeps the request as the console's preview for a while (images).
# Publishes the task's end (task.succeeded / failed / cancelled) to the
# tenant's event log and the webhook outbox in the same step, with an id
# derived from the task and status: an end is announced once, and never lost.
# Returns the previous status ('' when created), or false when the task was in
# no allowed status (the queue entry is acknowledged either way).
_FINISH = (
    _LIB
    + LUA_PUBLISH
    + """
if KEYS[5] ~= '' then
  redis.call('XACK', KEYS[5], ARGV[5], ARGV[4])
  redis.call('XDEL', KEYS[5], ARGV[4])
end
local id, now = ARGV[6], tonumber(ARGV[9])
local n = tonumber(ARGV[13])
local final = 14 + n
local current = redis.call('HGET', KEYS[1], 'status')
local kind, media, created, started, tenant
if not current then
  if n == 0 then return false end
  local t = {}
  for i = 14, 13 + n, 2 do t[ARGV[i]] = ARGV[i + 1] end
  kind, media, created, started, tenant = t.kind, t.media, t.created_at, t.started_at, t.tenant
  redis.call('HSET', KEYS[1], 'status', ARGV[2], unpack(ARGV, 14, 13 + n))
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  redis.call('SET', KEYS[7], '1', 'EX', ARGV[8])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
  index(id, created, kind, tenant, ARGV[2])
  stat(kind, media, tonumber(created), 'submitted')
else
  local allowed = false
  for s in string.gmatch(ARGV[1], '[^,]+') do
    if current == s then allowed = true end
  end
  if not allowed then return false end
  local f = redis.call('HMGET', KEYS[1], 'kind', 'media', 'created_at', 'started_at', 'tenant')
  kind, media, created, started, tenant = f[1], f[2], f[3], f[4], f[5]
  redis.call('HSET', KEYS[1], 'status', ARGV[2])
  move(id, created, current, ARGV[2])
end
local last = #ARGV - 3
if final <= last then redis.call('HSET', KEYS[1], unpack(ARGV, final, last)) end
local q = redis.call('HMGET', KEYS[1], 'q_key', 'q_video', 'input_bytes')
local size = tonumber(q[3]) or 0
if q[1] then
  -- (never a negated zero: Redis reads -0 as "not an integer")
  redis.call('HINCRBY', P .. 'usage:' .. q[1], 'tasks', -1)
  if size > 0 then redis.call('HINCRBY', P .. 'usage:' .. q[1], 'bytes', -size) end
  if q[2] == '1' then redis.call('HINCRBY', P .. 'usage:' .. q[1], 'videos', -1) end
  redis.call('HDEL', KEYS[1], 'q_key', 'q_video')
end
if size > 0 then
  redis.call('HINCRBY', P .. 'usage:all', 'bytes', -size)
  redis.call('HSET', KEYS[1], 'input_bytes', 0)
end
redis.call('XADD', KEYS[2], '*', 'type', 'status', 'data', ARGV[3])
redis.call('ZREM', KEYS[6], id)
local key = stat(kind, media, now, ARGV[2])
if started then
  local run = math.max(0, (now - tonumber(started)) * 1000)
  redis.call('HINCRBY', key, 'r' .. bucket(run), 1)
  redis.call('HINCRBY', key, 'run_ms', math.floor(run))
  local waited = math.max(0, (tonumber(started) - tonumber(created)) * 1000)
  redis.call('HINCRBY', key, 'w' .. bucket(waited), 1)
  -- the longest of the minute: percentiles interpolated in a wide bucket stop there
  if run > tonumber(redis.call('HGET', key, 'run_max') or '0') then
    redis.call('HSET', key, 'run_max', math.ceil(run))
  end
  if waited > tonumber(redis.call('HGET', key, 'wait_max') or '0') then
    redis.call('HSET', key, 'wait_max', math.ceil(waited))
  end
end
local keep = tonumber(ARGV[10])
if redis.call('HGET', KEYS[1], 'private') == '1' then keep = 0 end
if keep > 0 and media == 'image' then
  if ARGV[12] ~= '' then
    redis.call('SET', KEYS[8], ARGV[12], 'EX', keep)
  elseif redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('RENAME', KEYS[3], KEYS[8])
    redis.call('EXPIRE', KEYS[8], keep)
  end
  redis.call('LPUSH', KEYS[9], id)
  local most = tonumber(ARGV[11])
  if redis.call('LLEN', KEYS[9]) > most then
    for _, old in ipairs(redis.call('LRANGE', KEYS[9], most, -1)) do
      redis.call('DEL', P .. 'preview:' .. old)
    end
    redis.call('LTRIM', KEYS[9], 0, most - 1)
  end
end
redis.call('DEL', KEYS[3], KEYS[4])
if ARGV[2] == 'succeeded' or ARGV[2] == 'failed' or ARGV[2] == 'cancelled' then
  local e = redis.call('HMGET', KEYS[1], 'finished_at', 'attempts', 'error')
  local data = {task_id = id, kind = kind, media = media, status = ARGV[2],
                created_at = tonumber(created), started_at = tonumber(started),
                finished_at = tonumber(e[1]), attempts = tonumber(e[2])}
  if e[3] then data.error = cjson.decode(e[3]) end
  publish_event(tenant or 'default', 'task.' .. ARGV[2],
                'evt_' .. string.sub(redis.sha1hex(id .. ':' .. ARGV[2]), 1, 24), ARGV[9],
                cjson.encode(data), ARGV[last + 1], ARGV[last + 2], ARGV[last + 3])
end
return current or ''
"""
)

# KEYS: none. ARGV: a status (queued or running), then task ids. Puts each
# task still in that status into its kind's live index (tasks recorded before
# the live indexes existed); idempotent, and atomic against status changes.
_INDEX_LIVE = (
    _LIB
    + """
local added = 0
for i = 2, #ARGV do
  local t = redis.call('HMGET', P .. 'task:' .. ARGV[i], 'status', 'created_at')
  if t[1] == ARGV[1] then
    live(ARGV[i], t[2], '', ARGV[1])
    added = added + 1
  end
end
return added
"""
)

# KEYS: frames, task, events. ARGV: frame index, frame json, done, total, ttl.
_FRAME = """
local new = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('HSET', KEYS[2], 'progress_done', ARGV[3], 'progress_total', ARGV[4])
if new == 1 then redis.call('XADD', KEYS[3], '*', 'type', 'frame', 'data', ARGV[2]) end
local total = ARGV[4] == '0' and 'null' or ARGV[4]
redis.call('XADD', KEYS[3], '*', 'type', 'progress',
           'data', '{"done": ' .. ARGV[3] .. ', "total": ' .. total .. '}')
return new
"""


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts else None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class Task:
    id: str
    kind: str
    media: str
    status: Status
    created_at: float
    expires_at: float
    options: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    progress_done: int = 0
    progress_total: int = 0
    attempts: int = 0
    result: dict | None = None
    error: dict | None = None
    tenant: str = DEFAULT_TENANT
    replica: str | None = None
    mode: str = "queued"
    private: bool = False

    @property
    def kind_id(self) -> str:
        return f"{self.kind}:{self.media}"

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Task:
        def num(key: str) -> float | None:
            value = raw.get(key)
            return float(value) if value not in (None, "") else None

        return cls(
            id=raw["id"],
            kind=raw["kind"],
            media=raw["media"],
            status=Status(raw["status"]),
            created_at=float(raw["created_at"]),
            expires_at=float(raw["expires_at"]),
            options=json.loads(raw.get("options") or "{}"),
            started_at=num("started_at"),
            finished_at=num("finished_at"),
            progress_done=int(raw.get("progress_done") or 0),
            progress_total=int(raw.get("progress_total") or 0),
            attempts=int(raw.get("attempts") or 0),
            result=json.loads(raw["result"]) if raw.get("result") else None,
            error=json.loads(raw["error"]) if raw.get("error") else None,
            tenant=raw.get("tenant") or DEFAULT_TENANT,
            replica=raw.get("replica") or None,
            mode=raw.get("mode") or "queued",
        )

    def progress(self) -> dict[str, int | None]:
        """A video: frames done of those expected (None until known). An image
        is one item: 1 of 1 once it succeeded, 0 of 1 before, or when it failed
        or was cancelled."""
        if self.media == "image":
            return {"done": int(self.status == Status.SUCCEEDED), "total": 1}
        return {"done": self.progress_done, "total": self.progress_total or None}

    def to_json(self, status_url: str | None = None, *, tenant: bool = False) -> dict[str, Any]:
        """The task's REST body; `tenant` adds whose it is (for admins, who see all)."""
        body: dict[str, Any] = {
            "task_id": self.id,
            "kind": self.kind,
            "media": self.media,
            "status": self.status.value,
            "progress": self.progress(),
            "attempts": self.attempts,
            "options": self.options,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "expires_at": _iso(self.expires_at),
        }
        if status_url:
            body["status_url"] = status_url
        if self.replica:
            body["replica"] = self.replica
        if tenant:
            body["tenant"] = self.tenant
        if self.result is not None:
            body["result"] = self.result
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Claimed:
    """A queue entry a dispatcher took: which kind, which entry, which task."""

    kind_id: str
    entry_id: str
    task_id: str


_QUOTA_MESSAGES = {
    "tasks": "API key {key} has {used:.0f} tasks in flight, its limit ({limits.tasks}): "
    "retry when some have ended",
    "bytes": "API key {key} has {used:.0f} upload bytes queued; this one would pass its limit "
    "({limits.bytes} bytes): retry when some tasks have ended",
    "videos": "API key {key} has {used:.0f} video tasks in flight, its limit ({limits.videos}): "
    "retry when one has ended",
}


@dataclass(frozen=True)
class Started:
    """What starting an attempt found: code 1 run `request` (attempt number
    `attempts`); 0 the task is gone, cancelled or ended; -1 its attempts are
    spent; -2 its stored request is gone."""

    code: int
    attempts: int
    request: bytes | None = None
    created_at: float = 0.0
    tenant: str = DEFAULT_TENANT  # whose task: the backends see it (x-percept-tenant)


class JobStore:
    """The job table: one class, used by the routes and the dispatchers."""

    @classmethod
    def from_url(
        cls,
        url: str,
        ttl_s: int,
        tombstone_ttl_s: int,
        kind_ids: Iterable[str],
        keep_input_s: int = 0,
        keep_input_max: int = 1000,
        max_queued_bytes: int = 0,
    ) -> JobStore:
        # redis-py's default 5 s socket timeout would cut blocking reads (XREAD
        # BLOCK for SSE and ?wait=true): allow more than the longest block.
        options = {
            "socket_timeout": SOCKET_TIMEOUT_S,
            "socket_connect_timeout": 5,
            "health_check_interval": 30,
            # A pooled connection that died with a restarted Redis is replaced
            # and the command retried, instead of failing the request.
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            "retry_on_error": [RedisConnectionError],
        }
        return cls(
            aioredis.from_url(url, decode_responses=True, **options),
            aioredis.from_url(url, **options),
            ttl_s,
            tombstone_ttl_s,
            kind_ids,
            keep_input_s,
            keep_input_max,
            max_queued_bytes,
        )

    def __init__(
        self,
        redis: aioredis.Redis,
        raw: aioredis.Redis,
        ttl_s: int,
        tombstone_ttl_s: int,
        kind_ids: Iterable[str],
        keep_input_s: int = 0,
        keep_input_max: int = 1000,
        max_queued_bytes: int = 0,
    ) -> None:
        self.redis = redis  # decode_responses=True: records, events, queues
        self.raw = raw  # bytes in, bytes out: the stored requests
        self.ttl_s = ttl_s
        self.tombstone_ttl_s = tombstone_ttl_s
        self.kind_ids = tuple(kind_ids)
        self.keep_input_s = keep_input_s
        self.keep_input_max = keep_input_max
        self.max_queued_bytes = max_queued_bytes
        self._submit = raw.register_script(_SUBMIT)
        self._start = raw.register_script(_START)
        self._finish = redis.register_script(_FINISH)
        self._requeue = redis.register_script(_REQUEUE)
        self._frame = redis.register_script(_FRAME)
        self._index_live = redis.register_script(_INDEX_LIVE)

    @classmethod
    def from_settings(cls, settings, kind_ids: Iterable[str]) -> JobStore:
        """The store as a gateway's settings (GatewaySettings) describe it."""
        return cls.from_url(
            settings.redis_url,
            settings.task_ttl_s,
            settings.tombstone_ttl_s,
            kind_ids,
            settings.keep_input_s,
            settings.keep_input_max,
            settings.max_queued_bytes,
        )

    async def close(self) -> None:
        await self.redis.aclose()
        await self.raw.aclose()

    async def _records(self, task_ids) -> list[Task]:
        """The records of these ids (one pipelined round trip), missing ones skipped."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hgetall(self.task_key(task_id))
            raws = await pipe.execute()
        return [Task.from_hash(raw) for raw in raws if raw]

    # --- keys ---------------------------------------------------------------------
    @staticmethod
    def task_key(task_id: str) -> str:
        return f"{PREFIX}task:{task_id}"

    @staticmethod
    def queue_key(kind_id: str) -> str:
        return f"{PREFIX}queue:{kind_id}"

    @staticmethod
    def events_key(task_id: str) -> str:
        return f"{PREFIX}events:{task_id}"

    @staticmethod
    def input_key(task_id: str) -> str:
        return f"{PREFIX}input:{task_id}"

    @staticmethod
    def frames_key(task_id: str) -> str:
        return f"{PREFIX}frames:{task_id}"

    @staticmethod
    def preview_key(task_id: str) -> str:
        return f"{PREFIX}preview:{task_id}"

    @staticmethod
    def live_key(status: Status, kind_id: str) -> str:
        """The queued (or running) tasks of one kind (`kind:media`), by creation time."""
        return f"{PREFIX}tasks:live:{status.value}:{kind_id}"

    INLINE = PREFIX + "inline"
    INDEX = PREFIX + "tasks"
    PREVIEWS = PREFIX + "previews"
    LIVE_INDEXED = PREFIX + "live-indexed"  # (not under tasks: the pruning reads those)

    # --- set-up ---------------------------------------------------------------------
    async def ensure_groups(self) -> None:
        """Create each queue's consumer group (again, after a Redis restart)."""
        for kind_id in self.kind_ids:
            try:
                await self.redis.xgroup_create(
                    self.queue_key(kind_id), GROUP, id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        await self.index_live()

    async def index_live(self) -> None:
        """Once per Redis data set (a marker key says it was done): the tasks
        queued or running before the live indexes existed go into them."""
        if await self.redis.exists(self.LIVE_INDEXED):
            return
        for status in (Status.QUEUED, Status.RUNNING):
            index, lower, seen = f"{self.INDEX}:status:{status.value}", "-inf", set()
            while True:  # by score, so ids moving out meanwhile skip none
                rows = await self.redis.zrangebyscore(
                    index, lower, "+inf", start=0, num=1000, withscores=True
                )
                fresh = [task_id for task_id, _ in rows if task_id not in seen]
                if fresh:
                    await self._index_live(args=[status.value, *fresh])
                if len(rows) < 1000 or not fresh:
                    break
                lower = repr(rows[-1][1])
                seen = {task_id for task_id, score in rows if score == rows[-1][1]}
        await self.redis.set(self.LIVE_INDEXED, "1")

    async def groups_ready(self) -> bool:
        """Whether every queue has its consumer group (dispatch can proceed)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind_id in self.kind_ids:
                pipe.xinfo_groups(self.queue_key(kind_id))
            replies = await pipe.execute(raise_on_error=False)
        return all(
            not isinstance(reply, Exception) and any(g["name"] == GROUP for g in reply)
            for reply in replies
        )

    # --- the API side ---------------------------------------------------------------
    async def submit(
        self,
        kind: str,
        media: str,
        options: dict[str, Any],
        request: bytes,
        *,
        tenant: str = DEFAULT_TENANT,
        idempotency_key: str | None = None,
        request_hash: str = "",
        inline_deadline: float | None = None,
        task_id: str | None = None,
        created_at: float | None = None,
        key_id: str = "",
        limits: Limits | None = None,
        private: bool = False,
    ) -> tuple[str, bool]:
        """Record a task and, unless it runs inline (simple mode, run by this
        API process: `inline_deadline` is when it must have ended), store its
        request and queue it. One round trip. Returns (task id, created); with an
        Idempotency-Key already used for the same request, (its task, False).
        Raises ApiError 422 when the key was used for a different request.
        A given `task_id` whose record exists already is left as it is."""
        task_id = task_id or uuid.uuid4().hex
        now = created_at or time.time()
        idem = f"{PREFIX}idem:{tenant}:{idempotency_key}" if idempotency_key else ""
        inline = inline_deadline is not None
        if not inline:
            self._fits_at_all(len(request), key_id, limits)
        code, found, *rest = await self._submit(
            keys=[
                self.task_key(task_id),
                self.input_key(task_id),
                f"{PREFIX}gone:{task_id}",
                "",
                self.events_key(task_id),
                self.queue_key(f"{kind}:{media}"),
                idem,
                self.INLINE,
            ],
            args=[
                self.ttl_s,
                self.ttl_s + max(1, self.tombstone_ttl_s),
                task_id,
                kind,
                media,
                json.dumps(options),
                repr(now),
                repr(now + self.ttl_s),
                b"" if inline else request,
                tenant,
                request_hash,
                "inline" if inline else "queued",
                repr(inline_deadline or 0),
                key_id if limits is not None and limits.counted else "",
                limits.tasks if limits else 0,
                limits.bytes if limits else 0,
                limits.videos if limits else 0,
                self.max_queued_bytes,
                key_id,
                "1" if private else "0",
            ],
        )
        found = _text(found)
        _in_use = float(rest[0]) if rest else 0.0
        if code == -2:
            raise ApiError(
                429,
                "quota_exceeded",
                _QUOTA_MESSAGES[found].format(key=key_id, limits=limits, used=_in_use),
                headers={"Retry-After": "2"},
            )
        if code == -3:
            raise ApiError(
                503,
                "queue_full",
                f"the queue already holds {int(_in_use)} bytes of uploads, the gateway's cap "
                f"(GATEWAY_MAX_QUEUED_BYTES={self.max_queued_bytes}); retry later",
                headers={"Retry-After": "5"},
            )
        if code == -1:
            raise ApiError(
                422,
                "idempotency_conflict",
                f"Idempotency-Key {idempotency_key!r} was used for a different request "
                f"(task {found}); use a new key for a new request",
                task_id=found,
            )
        return found, code == 1

    def _fits_at_all(self, size: int, key_id: str, limits: Limits | None) -> None:
        """An upload larger than a byte cap could never be queued: 413, not a
        429 or 503 whose Retry-After would be waited for in vain."""
        caps = [(self.max_queued_bytes, "the gateway's cap on queued uploads")]
        if limits is not None and limits.bytes:
            caps.append((limits.bytes, f"API key {key_id}'s limit on upload bytes queued at once"))
        for cap, what in caps:
            if cap and size > cap:
                raise ApiError(
                    413,
                    "too_large",
                    f"this upload is {size} bytes, more than {what} ({cap} bytes) allows "
                    "even with nothing else queued; send a smaller one",
                )

    async def get(self, task_id: str, tenant: str | None = None) -> Task:
        """A task; another tenant's is NotFound (None: any tenant, for admins)."""
        raw = await self.redis.hgetall(self.task_key(task_id))
        if raw and (tenant is None or raw.get("tenant", DEFAULT_TENANT) == tenant):
            return Task.from_hash(raw)
        if not raw and await self.redis.exists(f"{PREFIX}gone:{task_id}"):
            raise TaskGone(task_id)
        raise TaskNotFound(task_id)

    async def list(
        self,
        status: str | None,
        kind: str | None,
        limit: int,
        cursor: str | None,
        tenant: str | None = None,
        *,
        media: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> tuple[list[Task], str | None]:
        """Newest first, from the most selective index among the filters (by
        status, kind or tenant), so a filtered page reads few records however
        many tasks there are. `cursor` is the creation time of the last task
        seen; since/until bound the creation time (Unix seconds)."""
        indexes = [self.INDEX]
        if status:
            indexes.append(f"{self.INDEX}:status:{status}")
        if kind:
            indexes.append(f"{self.INDEX}:kind:{kind}")
        if tenant is not None:
            indexes.append(f"{self.INDEX}:tenant:{tenant}")
        if len(indexes) > 1:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in indexes:
                    pipe.zcard(key)
                sizes = await pipe.execute()
            index = min(zip(sizes, indexes, strict=True))[1]
        else:
            index = self.INDEX
        lower = repr(max(since or 0.0, time.time() - self.ttl_s))
        upper = f"({cursor}" if cursor else (repr(until) if until else "+inf")
        batch = min(500, max(2 * limit, 50))
        found: list[Task] = []
        while len(found) < limit:
            rows = await self.redis.zrevrangebyscore(
                index, upper, lower, start=0, num=batch, withscores=True
            )
            if not rows:
                return found, None
            async with self.redis.pipeline(transaction=False) as pipe:
                for task_id, _ in rows:
                    pipe.hgetall(self.task_key(task_id))
                records = await pipe.execute()
            for (_task_id, score), raw in zip(rows, records, strict=True):
                upper = f"({score!r}"
                if not raw:
                    continue
                task = Task.from_hash(raw)
                if (
                    (status and task.status != status)
                    or (kind and task.kind != kind)
                    or (media and task.media != media)
                    or (tenant is not None and task.tenant != tenant)
                ):
                    continue
                found.append(task)
                if len(found) == limit:
                    return found, repr(score)
            if len(rows) < batch:
                return found, None
        return found, None

    async def find(self, prefix: str, limit: int, tenant: str | None = None) -> list[Task]:
        """Tasks whose id starts with `prefix` (the console's search box), newest first."""
        if len(prefix) == 32:
            try:
                return [await self.get(prefix, tenant)]
            except (TaskGone, TaskNotFound):
                return []
        ids: list[str] = []
        async for task_id, _score in self.redis.zscan_iter(
            self.INDEX, match=f"{prefix}*", count=1000
        ):
            ids.append(task_id)
            if len(ids) >= 10 * limit:
                break
        tasks = [t for t in await self._records(ids) if tenant is None or t.tenant == tenant]
        return sorted(tasks, key=lambda t: t.created_at, reverse=True)[:limit]

    async def prune_indexes(self) -> None:
        """Drop index entries of tasks whose records expired (a periodic chore)."""
        horizon = time.time() - self.ttl_s
        keys = [self.INDEX]
        async for key in self.redis.scan_iter(match=f"{self.INDEX}:*", count=1000):
            keys.append(key)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zremrangebyscore(key, "-inf", horizon)
            await pipe.execute()

    async def counts(self) -> dict[str, int]:
        """Tasks by status, from the indexes (records not yet expired)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for status in Status:
                pipe.zcount(f"{self.INDEX}:status:{status.value}", time.time() - self.ttl_s, "+inf")
            values = await pipe.execute()
        return {status.value: int(v) for status, v in zip(Status, values, strict=True)}

    async def stats(self, minutes: int) -> dict[str, list[dict[str, Any]]]:
        """Per kind, the last `minutes` one-minute buckets (oldest first): counts
        by outcome and run/wait histograms (see gateway/stats.py)."""
        now = int(time.time() // 60)
        window = range(now - minutes + 1, now + 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind_id in self.kind_ids:
                for minute in window:
                    pipe.hgetall(f"{PREFIX}stats:{kind_id}:{minute}")
            replies = await pipe.execute()
        out: dict[str, list[dict[str, Any]]] = {}
        for i, kind_id in enumerate(self.kind_ids):
            rows = replies[i * len(window) : (i + 1) * len(window)]
            out[kind_id] = [
                {"minute": minute * 60, **{k: int(v) for k, v in row.items()}}
                for minute, row in zip(window, rows, strict=True)
            ]
        return out

    async def preview(self, task_id: str) -> bytes | None:
        """The request a finished image task ran (its upload inside), while kept."""
        return await self.raw.get(self.preview_key(task_id))

    async def cancel(self, task_id: str, tenant: str | None = None) -> tuple[Task, bool]:
        """Cancel a queued or running task. Returns (task, changed)."""
        await self.get(task_id, tenant)  # NotFound for another tenant's task
        changed = await self.finish(
            task_id, Status.CANCELLED, allowed=(Status.QUEUED, Status.RUNNING)
        )
        if changed:
            await self.redis.publish(CANCEL_CHANNEL, task_id)
        return await self.get(task_id, tenant), changed

    async def events(self, task_id: str, after: str, block_ms: int) -> list[Event]:
        reply = await self.redis.xread(
            {self.events_key(task_id): after}, count=100, block=min(block_ms, MAX_BLOCK_MS)
        )
        out = []
        for _stream, entries in reply or ():
            for event_id, fields in entries:
                out.append(Event(event_id, fields["type"], json.loads(fields["data"])))
        return out

    # --- the dispatcher side ----------------------------------------------------------
    async def read_new(
        self, kind_ids: Iterable[str], consumer: str, count: int, block_ms: int
    ) -> list[Claimed]:
        """New entries for this consumer from several kinds' queues at once."""
        streams = {self.queue_key(k): ">" for k in kind_ids}
        reply = await self.redis.xreadgroup(
            GROUP, consumer, streams, count=count, block=min(block_ms, MAX_BLOCK_MS)
        )
        out = []
        for stream, entries in reply or ():
            kind_id = stream[len(PREFIX) + len("queue:") :]
            for entry_id, fields in entries:
                out.append(Claimed(kind_id, entry_id, fields["task_id"]))
        return out

    async def reclaim(
        self, kind_id: str, consumer: str, lease_ms: int, count: int
    ) -> list[Claimed]:
        """Entries whose dispatcher went silent for a lease, now this consumer's."""
        queue = self.queue_key(kind_id)
        _next, claimed, *_ = await self.redis.xautoclaim(
            queue, GROUP, consumer, lease_ms, start_id="0-0", count=count
        )
        out = []
        for entry_id, fields in claimed:
            if fields:
                out.append(Claimed(kind_id, entry_id, fields["task_id"]))
            else:  # a deleted entry: drop its stale pending record
                await self.redis.xack(queue, GROUP, entry_id)
        return out

    async def renew(self, kind_id: str, consumer: str, entry_ids: list[str]) -> None:
        """Renew leases: claiming entries for ourselves resets their idle time."""
        if entry_ids:
            await self.redis.xclaim(
                self.queue_key(kind_id), GROUP, consumer, 0, entry_ids, justid=True
            )

    async def ack(self, claimed: Claimed) -> None:
        queue = self.queue_key(claimed.kind_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(queue, GROUP, claimed.entry_id)
            pipe.xdel(queue, claimed.entry_id)
            await pipe.execute()

    async def start(self, task_id: str, max_attempts: int) -> Started:
        """Mark a task running for one more attempt and fetch its request (one
        round trip); see Started for what comes back."""
        reply = await self._start(
            keys=[self.task_key(task_id), self.events_key(task_id), self.input_key(task_id)],
            args=[repr(time.time()), max_attempts],
        )
        code = int(reply[0])
        if code != 1:
            return Started(code, int(reply[1]) if len(reply) > 1 else 0)
        tenant = _text(reply[4]) if len(reply) > 4 and reply[4] else DEFAULT_TENANT
        return Started(code, int(reply[1]), reply[2], float(reply[3]), tenant)

    async def requeue(self, task_id: str) -> None:
        """A dispatcher shutting down hands its task back (claimed after the lease)."""
        await self._requeue(keys=[self.task_key(task_id)])

    async def add_frame(self, task_id: str, frame: dict[str, Any], done: int, total: int) -> None:
        """Record one video frame's result and progress; a frame already
        recorded by an earlier attempt is not announced twice."""
        await self._frame(
            keys=[self.frames_key(task_id), self.task_key(task_id), self.events_key(task_id)],
            args=[frame["frame_index"], json.dumps(frame), done, total, self.ttl_s],
        )

    async def collected_frames(self, task_id: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(self.frames_key(task_id))
        return [json.loads(raw[k]) for k in sorted(raw, key=int)]

    async def finish(
        self,
        task_id: str,
        status: Status,
        *,
        result: dict | str | None = None,
        error: dict | None = None,
        replica: str | None = None,
        claimed: Claimed | None = None,
        allowed: tuple[Status, ...] = (Status.RUNNING,),
        create: Task | None = None,
        preview: bytes | None = None,
    ) -> bool:
        """End a task (only from an allowed status: a cancel wins over a late
        finish), delete its stored request and frames, acknowledge its queue
        entry and drop it from the inline index. One round trip. `create`: the
        record to write whole if the task has none yet (simple mode)."""
        fields: list[Any] = []
        if create is not None:
            fields = [
                "id", task_id, "kind", create.kind, "media", create.media,
                "options", json.dumps(create.options), "created_at", repr(create.created_at),
                "expires_at", repr(create.expires_at), "tenant", create.tenant,
                "mode", create.mode, "attempts", create.attempts,
                "private", "1" if create.private else "0",
                "started_at", repr(create.started_at or create.created_at),
            ]  # fmt: skip
        now = time.time()
        args: list[Any] = [
            ",".join(allowed),
            status.value,
            json.dumps({"status": status.value, **({"error": error} if error else {})}),
            claimed.entry_id if claimed else "",
            GROUP,
            task_id,
            self.ttl_s,
            self.ttl_s + max(1, self.tombstone_ttl_s),
            repr(now),
            self.keep_input_s,
            self.keep_input_max,
            preview or b"",
            len(fields),
            *fields,
            "finished_at",
            repr(now),
        ]
        if result is not None:
            args += ["result", result if isinstance(result, str) else json.dumps(result)]
        if error is not None:
            args += ["error", json.dumps(error)]
        if replica:
            args += ["replica", replica]
        args += Retention.from_env().args()
        previous = await self._finish(
            keys=[
                self.task_key(task_id),
                self.events_key(task_id),
                self.input_key(task_id),
                self.frames_key(task_id),
                self.queue_key(claimed.kind_id) if claimed else "",
                self.INLINE,
                f"{PREFIX}gone:{task_id}",
                self.preview_key(task_id),
                self.PREVIEWS,
            ],
            args=args,
        )
        return previous is not None

    async def overdue_inline(self, now: float, count: int = 100) -> list[str]:
        """Inline tasks that should have ended by now (their API process died)."""
        return await self.redis.zrangebyscore(self.INLINE, "-inf", now, start=0, num=count)

    async def queue_stats(self) -> dict[str, dict[str, float]]:
        """Per kind: tasks queued, tasks running, and the age in seconds of the
        oldest queued one since it was accepted (0 when none). Read from the
        records' own status (the live indexes), not from a consumer group's
        lag, which goes stale when a group is recreated: these agree with
        /api/tasks?status=queued. A few O(log n) reads, one round trip."""
        horizon = time.time() - self.ttl_s
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind_id in self.kind_ids:
                queued = self.live_key(Status.QUEUED, kind_id)
                pipe.zcount(queued, horizon, "+inf")
                pipe.zcount(self.live_key(Status.RUNNING, kind_id), horizon, "+inf")
                pipe.zrangebyscore(queued, horizon, "+inf", start=0, num=1, withscores=True)
            replies = await pipe.execute()
        now = time.time()
        stats = {}
        for i, kind_id in enumerate(self.kind_ids):
            waiting, running, first = replies[3 * i : 3 * i + 3]
            stats[kind_id] = {
                "waiting": int(waiting),
                "running": int(running),
                "oldest_waiting_s": max(0.0, now - float(first[0][1])) if first else 0.0,
            }
        return stats
