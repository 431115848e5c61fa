-- Gives back a per-user and per-network reservation when the main script rejected the
-- request, so a rejected request leaves Redis as it found it.
local user, network = KEYS[1], KEYS[2]
for _, counter in ipairs({user, network}) do
  if redis.call('DECR', counter) <= 0 then redis.call('DEL', counter) end
end
return 1
