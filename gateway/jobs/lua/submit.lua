-- Records a task and, unless it runs inline (simple mode), stores its request
-- and queues it; counts it against its API key's limits.
-- KEYS: task, input, tombstone, events, queue, idempotency key (or none),
--       inline index, queued bytes in all, the API key's usage (or none),
--       index of all, by kind, by tenant, by status, the live index of its
--       status and kind, its minute's statistics, the task family (a task an
--       idempotency key names), none (gateway/jobs/schema.py).
-- ARGV: ttl, tombstone ttl, id, kind, media, options, now, expires_at, input,
--       tenant, request hash, mode ("queued" | "inline"), inline deadline,
--       its limits on tasks, bytes and videos in flight (0: none), the cap on
--       upload bytes queued in all (0: none), the key id, "1" when the task's
--       upload must never be kept (a private kind).
-- Returns {1, id} created, {0, id} the same request under this key (or a given
-- id whose record exists), {-1, id} a different request under this key, {-2,
-- limit, in use} a key's limit reached, {-3, 'queued_bytes', in use} the
-- global cap on queued upload bytes reached. What a task counts against the
-- limits (q_key, q_video, input_bytes) is released when it ends (finish.lua).
local task, input, gone, events, queue, idem, inline_index = unpack(KEYS, 1, 7)
local usage_all, usage, tasks_family, none = KEYS[8], KEYS[9], KEYS[16], KEYS[17]
if redis.call('EXISTS', task) == 1 then return {0, ARGV[3]} end
if idem ~= none then
  local existing = redis.call('GET', idem)
  if existing then
    local sep = string.find(existing, '|', 1, true)
    local id = string.sub(existing, 1, sep - 1)
    if string.sub(existing, sep + 1) ~= ARGV[11] then return {-1, id} end
    if redis.call('EXISTS', tasks_family .. id) == 1 then return {0, id} end
  end
end
local inline = ARGV[12] == 'inline'
local status = inline and 'running' or 'queued'
local size = inline and 0 or string.len(ARGV[9])
local video = ARGV[5] == 'video' and 1 or 0
if tonumber(ARGV[17]) > 0 and size > 0 then
  local all = tonumber(redis.call('HGET', usage_all, 'bytes') or '0')
  if all + size > tonumber(ARGV[17]) then return {-3, 'queued_bytes', all} end
end
if usage ~= none then
  local u = redis.call('HMGET', usage, 'tasks', 'bytes', 'videos')
  local tasks, bytes, videos = tonumber(u[1]) or 0, tonumber(u[2]) or 0, tonumber(u[3]) or 0
  if tonumber(ARGV[14]) > 0 and tasks + 1 > tonumber(ARGV[14]) then return {-2, 'tasks', tasks} end
  if tonumber(ARGV[15]) > 0 and bytes + size > tonumber(ARGV[15]) then return {-2, 'bytes', bytes} end
  if tonumber(ARGV[16]) > 0 and video == 1 and videos + 1 > tonumber(ARGV[16]) then
    return {-2, 'videos', videos}
  end
  redis.call('HINCRBY', usage, 'tasks', 1)
  redis.call('HINCRBY', usage, 'bytes', size)
  redis.call('HINCRBY', usage, 'videos', video)
  redis.call('HSET', task, 'q_key', ARGV[18], 'q_video', video)
end
if size > 0 then redis.call('HINCRBY', usage_all, 'bytes', size) end
redis.call('HSET', task, 'id', ARGV[3], 'kind', ARGV[4], 'media', ARGV[5],
           'options', ARGV[6], 'created_at', ARGV[7], 'expires_at', ARGV[8],
           'tenant', ARGV[10], 'mode', ARGV[12], 'input_bytes', size, 'key_id', ARGV[18],
           'private', ARGV[19], 'status', status, 'attempts', inline and 1 or 0)
redis.call('EXPIRE', task, ARGV[1])
redis.call('SET', gone, '1', 'EX', ARGV[2])
index({unpack(KEYS, 10, 14)}, ARGV[3], ARGV[7])
stat(KEYS[15], 'submitted')
if inline then
  redis.call('HSET', task, 'started_at', ARGV[7])
  redis.call('XADD', events, '*', 'type', 'status', 'data', '{"status": "running"}')
  redis.call('ZADD', inline_index, ARGV[13], ARGV[3])
else
  redis.call('SET', input, ARGV[9], 'EX', ARGV[1])
  redis.call('XADD', events, '*', 'type', 'status', 'data', '{"status": "queued"}')
  redis.call('XADD', queue, '*', 'task_id', ARGV[3])
end
redis.call('EXPIRE', events, ARGV[1])
if idem ~= none then redis.call('SET', idem, ARGV[3] .. '|' .. ARGV[11], 'EX', ARGV[1]) end
return {1, ARGV[3]}
