-- The per-user and per-network hourly caps, checked before the main script (their keys share
-- the network's hash tag, not the number's). Both are counted, or neither.
-- Returns {1, 0, ''} when reserved, {0, pttl, 'user' | 'network'} when a cap is reached
-- (nothing written).
local user, network = KEYS[1], KEYS[2]
local user_limit, network_limit, ttl_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
if tonumber(redis.call('GET', user) or '0') >= user_limit then
  return {0, redis.call('PTTL', user), 'user'}
end
if tonumber(redis.call('GET', network) or '0') >= network_limit then
  return {0, redis.call('PTTL', network), 'network'}
end
for _, counter in ipairs({user, network}) do
  if redis.call('INCR', counter) == 1 then redis.call('PEXPIRE', counter, ttl_ms) end
end
return {1, 0, ''}
