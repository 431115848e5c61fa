-- POST /v1/codes: every check and every write of a new code, or nothing at all.
-- KEYS: 1 idempotency, 2 jobs stream, 3 events, 4 job record, 5 code, 6 resend flag,
--       7 hourly counter, 8 daily counter, 9 otp
-- ARGV: 1 fingerprint ('' = no Idempotency-Key), 2 answer to remember, 3 its ttl (s),
--       4 now (ms), 5 job id, 6 job json, 7 stream maxlen, 8 events maxlen, 9 status ttl (s),
--       10 masked mobile, 11 template id, 12 purpose, 13 code hash, 14 code, 15 code ttl (ms),
--       16 resend interval (ms), 17 hourly limit, 18 hourly counter ttl (ms), 19 daily limit,
--       20 daily counter ttl (ms), 21 verify attempts, 22 otp key prefix
local replay = idempotent_replay(KEYS[1], ARGV[1])
if replay then return replay end

local resend = redis.call('PTTL', KEYS[6])
if resend ~= -2 then
  if resend < 0 then resend = tonumber(ARGV[16]) end
  return {'resend_too_soon', tostring(resend)}
end
if tonumber(redis.call('GET', KEYS[7]) or '0') >= tonumber(ARGV[17]) then
  return {'hourly_limit', tostring(redis.call('PTTL', KEYS[7]))}
end
if tonumber(redis.call('GET', KEYS[8]) or '0') >= tonumber(ARGV[19]) then
  return {'daily_limit', tostring(redis.call('PTTL', KEYS[8]))}
end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[7]) then
  return {'queue_full', ''}
end

-- A newer code replaces the old one; the old job finds itself superseded and its plain code
-- goes now rather than at its TTL.
local old = redis.call('HGET', KEYS[5], 'job')
if old then redis.call('DEL', ARGV[22] .. old) end
redis.call('DEL', KEYS[5])
redis.call('HSET', KEYS[5], 'hash', ARGV[13], 'job', ARGV[5], 'attempts', ARGV[21])
redis.call('PEXPIRE', KEYS[5], ARGV[15])
redis.call('SET', KEYS[6], ARGV[5], 'PX', ARGV[16])
if redis.call('INCR', KEYS[7]) == 1 then redis.call('PEXPIRE', KEYS[7], ARGV[18]) end
if redis.call('INCR', KEYS[8]) == 1 then redis.call('PEXPIRE', KEYS[8], ARGV[20]) end
redis.call('SET', KEYS[9], ARGV[14], 'PX', ARGV[15])
enqueue(KEYS[4], KEYS[2], KEYS[3], ARGV[5], ARGV[6], ARGV[4], ARGV[9], ARGV[8],
  {'kind', 'code', 'mobile', ARGV[10], 'template_id', ARGV[11], 'purpose', ARGV[12]})
remember_answer(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return {'ok', ''}
