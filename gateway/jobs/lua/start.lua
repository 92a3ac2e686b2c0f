-- Marks a task running for one more attempt and fetches its request.
-- KEYS: task, events, input, the status index family, the live index
--       families of queued and of running tasks.
-- ARGV: now, max attempts.
-- Returns {1, attempts, input, created_at, tenant} to run, {0} when the task is
-- no longer runnable, {-1, attempts} when its attempts are spent, {-2} when
-- its input is gone.
local task, events, input = KEYS[1], KEYS[2], KEYS[3]
local status = redis.call('HGET', task, 'status')
if status ~= 'queued' and status ~= 'running' then return {0} end
local data = redis.call('GET', input)
if not data then return {-2} end
local attempts = redis.call('HINCRBY', task, 'attempts', 1)
if attempts > tonumber(ARGV[2]) then return {-1, attempts - 1} end
local t = redis.call('HMGET', task, 'id', 'created_at', 'kind', 'media', 'tenant')
if status == 'queued' then
  redis.call('HSET', task, 'status', 'running')
  move(KEYS[4], {queued = KEYS[5], running = KEYS[6]}, t[3] .. ':' .. t[4], t[1], t[2],
       'queued', 'running')
end
redis.call('HSETNX', task, 'started_at', ARGV[1])
redis.call('XADD', events, '*', 'type', 'status', 'data', '{"status": "running"}')
return {1, attempts, data, t[2], t[5] or ''}
