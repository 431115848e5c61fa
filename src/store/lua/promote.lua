-- Moves retries that are due back onto the stream, atomically (never in both, never lost).
-- KEYS: 1 retry set, 2 jobs stream.  ARGV: 1 now (ms), 2 batch size.  Returns how many moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('XADD', KEYS[2], '*', 'job', due[i])
end
return #due
