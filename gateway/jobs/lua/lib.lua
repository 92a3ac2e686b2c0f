-- Shared by the job table's scripts (gateway/jobs/scripts.py puts BOUNDS, the
-- run/wait histogram bounds of gateway/stats.py, before it). No key is named
-- here: every function is given its keys, or a key family's prefix (see
-- gateway/jobs/schema.py) that it appends the record's data to.
local LIVE = {queued = true, running = true}

-- The queued and the running tasks of each kind, kept with the status (the
-- queue figures of /api/stats and /metrics). `lives`: the live indexes'
-- prefixes by status; `of`: the task's 'kind:media'.
local function live(lives, of, id, created, from, to)
  if LIVE[from] then redis.call('ZREM', lives[from] .. of, id) end
  if LIVE[to] then redis.call('ZADD', lives[to] .. of, created, id) end
end

-- A new task in the list indexes: `keys` (all, by kind, by tenant, by status,
-- and the live index of its status and kind when it is queued or running).
local function index(keys, id, created)
  for _, key in ipairs(keys) do redis.call('ZADD', key, created, id) end
end

-- A status change in the status index (`by_status`: its prefix) and the live one.
local function move(by_status, lives, of, id, created, from, to)
  if from and from ~= '' then redis.call('ZREM', by_status .. from, id) end
  redis.call('ZADD', by_status .. to, created, id)
  live(lives, of, id, created, from or '', to)
end

local function bucket(ms)
  for i, b in ipairs(BOUNDS) do if ms <= b then return i end end
  return #BOUNDS + 1
end

-- Count one event in a kind's per-minute statistics (kept 26 h); returns the key.
local function stat(key, field, n)
  redis.call('HINCRBY', key, field, n or 1)
  redis.call('EXPIRE', key, 93600)
  return key
end
