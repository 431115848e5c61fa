-- Gives back a per-IP reservation when the main script rejected the request, so a rejected
-- request leaves Redis as it found it.
local counter = KEYS[1]
if redis.call('DECR', counter) <= 0 then redis.call('DEL', counter) end
return 1
