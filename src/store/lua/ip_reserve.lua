-- Per-IP hourly cap, checked before the main script (the key lives outside its hash tag).
-- Returns {1, count} when reserved, {0, pttl} when the cap is reached (nothing written).
local counter = KEYS[1]
local limit, ttl_ms = tonumber(ARGV[1]), ARGV[2]
local n = tonumber(redis.call('GET', counter) or '0')
if n >= limit then
  return {0, redis.call('PTTL', counter)}
end
n = redis.call('INCR', counter)
if n == 1 then redis.call('PEXPIRE', counter, ttl_ms) end
return {1, n}
