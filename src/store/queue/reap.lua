-- A consumer whose heartbeat key has lapsed is dead: its pending entries move to us now
-- (XCLAIM counts a delivery, which the poison-pill limit reads), and once it holds nothing
-- it leaves the group. Checked and done in one step, so a heartbeat that comes back in
-- between stops it.
-- Returns the claimed entries, as XCLAIM does.
local stream, heartbeat = KEYS[1], KEYS[2]
local group, dead, me, count, min_idle = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
if redis.call('EXISTS', heartbeat) == 1 then return {} end
local pending = redis.call('XPENDING', stream, group, 'IDLE', min_idle, '-', '+', count, dead)
if #pending == 0 then
  if #redis.call('XPENDING', stream, group, '-', '+', 1, dead) == 0 then
    redis.call('XGROUP', 'DELCONSUMER', stream, group, dead)
  end
  return {}
end
local ids = {}
for i, p in ipairs(pending) do ids[i] = p[1] end
return redis.call('XCLAIM', stream, group, me, min_idle, unpack(ids))
