-- One event for one endpoint, at most once: a fan-out that runs again after a crash (the
-- events entry was not acked yet) finds it there and changes nothing.
local due, events, tries = KEYS[1], KEYS[2], KEYS[3]
local event_id, payload, now = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HSETNX', events, event_id, payload) == 0 then return 0 end
redis.call('ZADD', due, now, event_id)
redis.call('HSET', tries, event_id, '0:' .. now)
return 1
