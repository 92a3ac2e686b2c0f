-- A dispatcher shutting down hands a running task back (claimed after the lease).
-- KEYS: task, the status index family, the live index families of queued and
--       of running tasks.
local task = KEYS[1]
if redis.call('HGET', task, 'status') ~= 'running' then return 0 end
redis.call('HSET', task, 'status', 'queued')
local t = redis.call('HMGET', task, 'id', 'created_at', 'kind', 'media')
move(KEYS[2], {queued = KEYS[3], running = KEYS[4]}, t[3] .. ':' .. t[4], t[1], t[2],
     'running', 'queued')
return 1
