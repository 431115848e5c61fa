-- An entry still waiting for a send slot is ours and alive: reset its idle time so the
-- `claim_idle` backstop does not take it from a live worker. JUSTID: not a new delivery.
-- Returns 1 if the entry was still ours.
local stream = KEYS[1]
local group, me, entry_id = ARGV[1], ARGV[2], ARGV[3]
local p = redis.call('XPENDING', stream, group, entry_id, entry_id, 1)
if p[1] and p[1][2] == me then
  redis.call('XCLAIM', stream, group, me, 0, entry_id, 'JUSTID')
  return 1
end
return 0
