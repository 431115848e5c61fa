-- Gives back a per-IP reservation when the main script rejected the request, so a rejected
-- request leaves Redis as it found it.  KEYS: 1 ip counter.
if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end
return 1
