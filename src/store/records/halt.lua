-- An operator's kill switch: `pause` (until `until_ms`, or until resumed when 0) or `resume`,
-- and the trail of who did it, when and why. Returns 1 if it changed anything.
local halt, audit = KEYS[1], KEYS[2]
local action, by, reason, now, until_ms = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
if action == 'pause' then
  redis.call('DEL', halt)
  redis.call('HSET', halt, 'by', by, 'reason', reason, 'since_ms', now, 'until_ms', until_ms)
  if until_ms > 0 then redis.call('PEXPIREAT', halt, until_ms) end
elseif action == 'resume' then
  if redis.call('DEL', halt) == 0 then return 0 end
else
  return redis.error_reply('halt: ' .. action .. ' is not an action')
end
redis.call('XADD', audit, 'MAXLEN', '~', 1000, '*', 'action', action, 'by', by,
  'reason', reason, 'until_ms', until_ms, 'ts', now)
return 1
