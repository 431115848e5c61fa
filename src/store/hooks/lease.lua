-- Up to `count` deliveries due now, each leased to the caller for `lease_ms` (its due time
-- moves that far ahead): another dispatcher does not take it meanwhile, and if the caller
-- dies it is due again when the lease ends. Returns {id, payload, tries, ...}.
local due, events, tries = KEYS[1], KEYS[2], KEYS[3]
local now, lease_ms, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, count)
local out = {}
for _, id in ipairs(ids) do
  local payload = redis.call('HGET', events, id)
  if payload then
    redis.call('ZADD', due, 'XX', now + lease_ms, id)
    out[#out + 1] = id
    out[#out + 1] = payload
    out[#out + 1] = redis.call('HGET', tries, id) or ('0:' .. now)
  else
    redis.call('ZREM', due, id)
  end
end
return out
