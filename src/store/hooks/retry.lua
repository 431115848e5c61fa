-- An attempt failed: due again at `next_due`, or (`next_due` empty: it is past
-- webhooks.max_age) dead, kept for `smsq webhooks replay` until `dead_ttl_ms` has passed.
-- Dead deliveries older than that go now, so the dead set follows time, not traffic.
local due, events, tries, stats, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local event_id, now, next_due, tried, dead_ttl_ms = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
if not redis.call('ZSCORE', due, event_id) then return 'gone' end
redis.call('HSET', tries, event_id, tried)
if next_due ~= '' then
  redis.call('ZADD', due, next_due, event_id)
  redis.call('HINCRBY', stats, 'failed_attempts', '1')
  return 'retrying'
end
redis.call('ZREM', due, event_id)
redis.call('ZADD', dead, now, event_id)
redis.call('HINCRBY', stats, 'dead', '1')
local old = redis.call('ZRANGEBYSCORE', dead, '-inf', now - dead_ttl_ms, 'LIMIT', 0, 100)
for _, id in ipairs(old) do
  redis.call('ZREM', dead, id)
  redis.call('HDEL', events, id)
  redis.call('HDEL', tries, id)
end
return 'dead'
