-- POST /v1/codes: every check and every write of a new code, or nothing at all.
local idem, stream, events, job_key, by_mobile = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local code_key, resend_key, hourly_key, daily_key, otp = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local fingerprint, answer, answer_ttl, now, job_id, job_json = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local stream_maxlen, events_maxlen, ttl, masked, template_id = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local purpose, code_hash, sealed_code, code_ttl_ms, resend_ms = ARGV[12], ARGV[13], ARGV[14], ARGV[15], ARGV[16]
local hourly_limit, hourly_ttl_ms = tonumber(ARGV[17]), ARGV[18]
local daily_limit, daily_ttl_ms = tonumber(ARGV[19]), ARGV[20]
local verify_attempts, otp_prefix, request_id, test = ARGV[21], ARGV[22], ARGV[23], ARGV[24]
-- fingerprint is '' without an Idempotency-Key. sealed_code is the code encrypted for this job
-- (smsq never hands Redis the plain code: SLOWLOG and MONITOR show arguments).

local replay = idempotent_replay(idem, fingerprint)
if replay then return replay end

local resend = redis.call('PTTL', resend_key)
if resend ~= -2 then
  if resend < 0 then resend = tonumber(resend_ms) end
  return {'resend_too_soon', tostring(resend)}
end
if tonumber(redis.call('GET', hourly_key) or '0') >= hourly_limit then
  return {'hourly_limit', tostring(redis.call('PTTL', hourly_key))}
end
if tonumber(redis.call('GET', daily_key) or '0') >= daily_limit then
  return {'daily_limit', tostring(redis.call('PTTL', daily_key))}
end
if redis.call('XLEN', stream) >= tonumber(stream_maxlen) then
  return {'queue_full', ''}
end

-- A newer code replaces the old one; the old job finds itself superseded and its plain code
-- goes now rather than at its TTL.
local old = redis.call('HGET', code_key, 'job')
if old then redis.call('DEL', otp_prefix .. old) end
redis.call('DEL', code_key)
redis.call('HSET', code_key, 'hash', code_hash, 'job', job_id, 'attempts', verify_attempts)
redis.call('PEXPIRE', code_key, code_ttl_ms)
-- resend_ms 0: a test number's code, which has no resend window.
if tonumber(resend_ms) > 0 then redis.call('SET', resend_key, job_id, 'PX', resend_ms) end
if redis.call('INCR', hourly_key) == 1 then redis.call('PEXPIRE', hourly_key, hourly_ttl_ms) end
if redis.call('INCR', daily_key) == 1 then redis.call('PEXPIRE', daily_key, daily_ttl_ms) end
redis.call('SET', otp, sealed_code, 'PX', code_ttl_ms)
local fields = {'kind', 'code', 'mobile', masked, 'template_id', template_id, 'purpose', purpose}
-- A test number's job says so on its record (SMSQ_TEST_NUMBERS: never sent to the provider).
if test == '1' then fields[#fields + 1] = 'test'; fields[#fields + 1] = '1' end
enqueue(job_key, stream, events, by_mobile, job_id, job_json, now, ttl, events_maxlen,
  with_request_id(fields, request_id))
remember_answer(idem, fingerprint, answer, answer_ttl)
return {'ok', ''}
