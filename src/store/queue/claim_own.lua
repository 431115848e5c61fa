-- Takes our own entries back after a failed attempt at them: only those still pending with
-- us. Another worker may have reclaimed one meanwhile (we looked dead); it is theirs now.
-- JUSTID ('1') makes the claim not count as a delivery.
-- Returns what XCLAIM returns, for our entries only.
local stream = KEYS[1]
local group, me, justid = ARGV[1], ARGV[2], ARGV[3]
-- ARGV[4..]: entry_ids
local mine = {}
for i = 4, #ARGV do
  local p = redis.call('XPENDING', stream, group, ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == me then mine[#mine + 1] = ARGV[i] end
end
if #mine == 0 then return {} end
if justid == '1' then
  return redis.call('XCLAIM', stream, group, me, 0, unpack(mine), 'JUSTID')
end
return redis.call('XCLAIM', stream, group, me, 0, unpack(mine))
