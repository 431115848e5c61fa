-- Per-IP hourly cap, checked before the main script (the key lives outside its hash tag).
-- KEYS: 1 ip counter.  ARGV: 1 limit, 2 ttl (ms).
-- Returns {1, count} when reserved, {0, pttl} when the cap is reached (nothing written).
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  return {0, redis.call('PTTL', KEYS[1])}
end
n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {1, n}
