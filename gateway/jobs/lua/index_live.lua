-- Puts each task still in a status (queued or running) into its kind's live
-- index (tasks recorded before the live indexes existed); idempotent, and
-- atomic against status changes.
-- KEYS: the live index family of that status, then the tasks' records.
-- ARGV: the status, then the tasks' ids (in the order of their records).
local added = 0
for i = 2, #KEYS do
  local t = redis.call('HMGET', KEYS[i], 'status', 'created_at', 'kind', 'media')
  if t[1] == ARGV[1] then
    redis.call('ZADD', KEYS[1] .. t[3] .. ':' .. t[4], t[2], ARGV[i])
    added = added + 1
  end
end
return added
