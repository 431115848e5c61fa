-- The endpoint took it (2xx): gone, and counted.
local due, events, tries, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local event_id = ARGV[1]
if redis.call('ZREM', due, event_id) == 0 then return 0 end
redis.call('HDEL', events, event_id)
redis.call('HDEL', tries, event_id)
redis.call('HINCRBY', stats, 'delivered', '1')
return 1
