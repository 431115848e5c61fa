-- Dead deliveries due again now, with a fresh retry budget (an empty list: all of them).
local due, tries, dead = KEYS[1], KEYS[2], KEYS[3]
local now = ARGV[1]
-- ARGV[2..]: event_ids
local ids = {}
if #ARGV == 1 then
  ids = redis.call('ZRANGE', dead, 0, -1)
else
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local moved = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', dead, id) == 1 then
    redis.call('ZADD', due, now, id)
    redis.call('HSET', tries, id, '0:' .. now)
    moved = moved + 1
  end
end
return moved
