-- Previews (gateway/jobs/previews.py): a finished image task's request, kept
-- a while for the console, counted as Redis holds it and ordered by Redis'
-- own clock (the one their expiry runs on), whichever process keeps them. A
-- preview whose expiry ran out is forgotten at the next keep; one dropped to
-- make room marks its task (`input_dropped`), so /input can say why.
-- `pv`: the keys {set, sizes, bytes} and the families {of_tenant, preview, task}.
local function add_bytes(pv, field, n)
  if n ~= 0 and redis.call('HINCRBY', pv.bytes, field, n) <= 0 then
    redis.call('HDEL', pv.bytes, field)
  end
end

-- Stop counting a kept preview; returns its bytes (0 when it was not counted).
local function forget_preview(pv, id)
  redis.call('ZREM', pv.set, id)
  local entry = redis.call('HGET', pv.sizes, id)
  if not entry then return 0 end
  local sep = string.find(entry, '|', 1, true)
  local size, tenant = tonumber(string.sub(entry, 1, sep - 1)), string.sub(entry, sep + 1)
  redis.call('HDEL', pv.sizes, id)
  redis.call('ZREM', pv.of_tenant .. tenant, id)
  add_bytes(pv, 'all', -size)
  add_bytes(pv, 't:' .. tenant, -size)
  return size
end

local function drop_preview(pv, id)
  redis.call('DEL', pv.preview .. id)
  if redis.call('EXISTS', pv.task .. id) == 1 then
    redis.call('HSET', pv.task .. id, 'input_dropped', 1)
  end
  return forget_preview(pv, id)
end

local function keep_preview(pv, id, tenant, ttl, most, per_tenant, total)
  if redis.call('TYPE', pv.set).ok == 'list' then redis.call('DEL', pv.set) end  -- the older layout
  local time = redis.call('TIME')
  local now = tonumber(time[1]) + tonumber(time[2]) / 1e6
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', pv.set, '-inf', now - ttl, 'LIMIT', 0, 100)) do
    if redis.call('EXISTS', pv.preview .. old) == 0 then forget_preview(pv, old) end
  end
  forget_preview(pv, id)  -- kept again (never counted twice)
  local size = redis.call('MEMORY', 'USAGE', pv.preview .. id) or 0
  if size > per_tenant or size > total or most < 1 then
    redis.call('DEL', pv.preview .. id)  -- larger than a whole budget: not kept
    return
  end
  local mine = pv.of_tenant .. tenant
  redis.call('ZADD', pv.set, now, id)
  redis.call('ZADD', mine, now, id)
  redis.call('HSET', pv.sizes, id, size .. '|' .. tenant)
  add_bytes(pv, 'all', size)
  add_bytes(pv, 't:' .. tenant, size)
  for _, set in ipairs({mine, pv.set}) do  -- the tenant's oldest first, then anyone's
    local field, budget = set == mine and 't:' .. tenant or 'all', set == mine and per_tenant or total
    while tonumber(redis.call('HGET', pv.bytes, field) or '0') > budget
        or (set == pv.set and redis.call('ZCARD', pv.set) > most) do
      local oldest = redis.call('ZRANGE', set, 0, 0)[1]
      if not oldest then break end
      drop_preview(pv, oldest)
      redis.call('ZREM', set, oldest)
    end
  end
end
