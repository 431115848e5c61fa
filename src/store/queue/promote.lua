-- Moves retries that are due back onto the stream, atomically (never in both, never lost).
-- Returns how many moved.
local retry, stream = KEYS[1], KEYS[2]
local now, batch = ARGV[1], tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', retry, '-inf', now, 'LIMIT', 0, batch)
for i = 1, #due do
  redis.call('ZREM', retry, due[i])
  redis.call('XADD', stream, '*', 'job', due[i])
end
return #due
