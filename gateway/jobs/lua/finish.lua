-- Ends a task in an allowed status; a task with no record yet (simple mode
-- records a task once, when it ends) is created whole when create pairs are
-- given. Releases what it counted against the limits, deletes its stored
-- request and frames, acknowledges its queue entry, drops it from the inline
-- index and keeps the request as the console's preview for a while (images),
-- within the budget: the oldest previews make room (previews.lua).
-- Publishes the task's end (task.succeeded / failed / cancelled) to the
-- tenant's event log and the webhook outbox in the same step, with an id
-- derived from the task and status: an end is announced once, and never lost.
-- KEYS: task, events, input, frames, queue (or none), inline index, tombstone,
--       preview, none; the index of all, by kind and by tenant (these two:
--       none unless created); the families (gateway/jobs/schema.py) of the
--       status indexes, of the queued and of the running live indexes, of the
--       statistics and of the usage counters; queued bytes in all; the
--       previews' set, sizes and bytes; the families of a tenant's previews,
--       of previews and of records; the event log family, all tenants' log and
--       the outbox.
-- ARGV: allowed statuses (csv), new status, event json, queue entry id (or ""),
--       group, task id, ttl, tombstone ttl, now, preview ttl (0: keep none),
--       the previews' budget ("most bytes-per-tenant bytes-in-all"), preview
--       bytes (simple mode: the request; else ""), n, then n create field/value
--       pairs, then the final field/value pairs, then the event log's retention
--       (gateway/events.py: 3 values).
-- Returns the previous status ('' when created), or false when the task was in
-- no allowed status (the queue entry is acknowledged either way).
local task, events, input, frames, queue, inline_index, gone, preview, none = unpack(KEYS, 1, 9)
local all, by_kind, by_tenant, by_status = KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local lives = {queued = KEYS[14], running = KEYS[15]}
local stats_family, usage_family, usage_all = KEYS[16], KEYS[17], KEYS[18]
local pv = {set = KEYS[19], sizes = KEYS[20], bytes = KEYS[21], of_tenant = KEYS[22],
            preview = KEYS[23], task = KEYS[24]}
local evlog_family, evlog_all, outbox = KEYS[25], KEYS[26], KEYS[27]
if queue ~= none then
  redis.call('XACK', queue, ARGV[5], ARGV[4])
  redis.call('XDEL', queue, ARGV[4])
end
local id, now = ARGV[6], tonumber(ARGV[9])
local n = tonumber(ARGV[13])
local final = 14 + n
local current = redis.call('HGET', task, 'status')
local kind, media, created, started, tenant
if not current then
  if n == 0 then return false end
  local t = {}
  for i = 14, 13 + n, 2 do t[ARGV[i]] = ARGV[i + 1] end
  kind, media, created, started, tenant = t.kind, t.media, t.created_at, t.started_at, t.tenant
  redis.call('HSET', task, 'status', ARGV[2], unpack(ARGV, 14, 13 + n))
  redis.call('EXPIRE', task, ARGV[7])
  redis.call('SET', gone, '1', 'EX', ARGV[8])
  redis.call('EXPIRE', events, ARGV[7])
  index({all, by_kind, by_tenant, by_status .. ARGV[2]}, id, created)
  live(lives, kind .. ':' .. media, id, created, '', ARGV[2])
  stat(stats_family .. kind .. ':' .. media .. ':' .. math.floor(tonumber(created) / 60), 'submitted')
else
  local allowed = false
  for s in string.gmatch(ARGV[1], '[^,]+') do
    if current == s then allowed = true end
  end
  if not allowed then return false end
  local f = redis.call('HMGET', task, 'kind', 'media', 'created_at', 'started_at', 'tenant')
  kind, media, created, started, tenant = f[1], f[2], f[3], f[4], f[5]
  redis.call('HSET', task, 'status', ARGV[2])
  move(by_status, lives, kind .. ':' .. media, id, created, current, ARGV[2])
end
local last = #ARGV - 3
if final <= last then redis.call('HSET', task, unpack(ARGV, final, last)) end
local q = redis.call('HMGET', task, 'q_key', 'q_video', 'input_bytes')
local size = tonumber(q[3]) or 0
if q[1] then
  -- (never a negated zero: Redis reads -0 as "not an integer")
  local usage = usage_family .. q[1]
  redis.call('HINCRBY', usage, 'tasks', -1)
  if size > 0 then redis.call('HINCRBY', usage, 'bytes', -size) end
  if q[2] == '1' then redis.call('HINCRBY', usage, 'videos', -1) end
  redis.call('HDEL', task, 'q_key', 'q_video')
end
if size > 0 then
  redis.call('HINCRBY', usage_all, 'bytes', -size)
  redis.call('HSET', task, 'input_bytes', 0)
end
redis.call('XADD', events, '*', 'type', 'status', 'data', ARGV[3])
redis.call('ZREM', inline_index, id)
local key = stat(stats_family .. kind .. ':' .. media .. ':' .. math.floor(now / 60), ARGV[2])
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
if redis.call('HGET', task, 'private') == '1' then keep = 0 end
if keep > 0 and media == 'image' then
  if ARGV[12] ~= '' then
    redis.call('SET', preview, ARGV[12], 'EX', keep)
  elseif redis.call('EXISTS', input) == 1 then
    redis.call('RENAME', input, preview)
    redis.call('EXPIRE', preview, keep)
  end
  if redis.call('EXISTS', preview) == 1 then
    local most, per_tenant, total = string.match(ARGV[11], '^(%d+) (%d+) (%d+)$')
    keep_preview(pv, id, redis.call('HGET', task, 'tenant') or 'default', keep,
                 tonumber(most), tonumber(per_tenant), tonumber(total))
  end
end
redis.call('DEL', input, frames)
if ARGV[2] == 'succeeded' or ARGV[2] == 'failed' or ARGV[2] == 'cancelled' then
  local e = redis.call('HMGET', task, 'finished_at', 'attempts', 'error')
  local data = {task_id = id, kind = kind, media = media, status = ARGV[2],
                created_at = tonumber(created), started_at = tonumber(started),
                finished_at = tonumber(e[1]), attempts = tonumber(e[2])}
  if e[3] then data.error = cjson.decode(e[3]) end
  local o = redis.call('HGET', task, 'options')  -- the subscription it names (routes/submit.py)
  if o and string.find(o, '"webhook"', 1, true) then data.webhook = cjson.decode(o).webhook end
  tenant = tenant or 'default'
  publish_event(evlog_family .. tenant, evlog_all, outbox, tenant, 'task.' .. ARGV[2],
                'evt_' .. string.sub(redis.sha1hex(id .. ':' .. ARGV[2]), 1, 24), ARGV[9],
                cjson.encode(data), ARGV[last + 1], ARGV[last + 2], ARGV[last + 3])
end
return current or ''
