-- Records one video frame's result and the progress; a frame already recorded
-- by an earlier attempt is not announced twice.
-- KEYS: frames, task, events. ARGV: frame index, frame json, done, total, ttl.
local new = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('HSET', KEYS[2], 'progress_done', ARGV[3], 'progress_total', ARGV[4])
if new == 1 then redis.call('XADD', KEYS[3], '*', 'type', 'frame', 'data', ARGV[2]) end
local total = ARGV[4] == '0' and 'null' or ARGV[4]
redis.call('XADD', KEYS[3], '*', 'type', 'progress',
           'data', '{"done": ' .. ARGV[3] .. ', "total": ' .. total .. '}')
return new
