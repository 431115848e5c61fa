-- A delivery report from the platform. A report that names its job (Ronglian's reqId or a
-- call's userData, Aliyun's OutId: the job id) finds it directly: the job to this number
-- (its short masked number) that was sent with this message id, or sent without one (it
-- ended on 160054, "the provider already has this reqId", after an answer was lost). Other
-- reports (Tencent) go through the index the `sent` write left. A report that comes before
-- that write (the platform can be faster than our status write) is kept an hour for it; so
-- is one that is not ours, until it expires.
-- An `undelivered` text with `code.fallback = "voice"` is then called, once, with the same
-- code (fall_back in lib.lua): voice_limit is the day's voice cap then, 0 otherwise.
-- Returns {status, job id[, the call's job id]} (see deliver_report) | {'early'} | {'duplicate'}
local sid_key, early_key, events, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local req_job_key, by_mobile, stream, caps = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local job_prefix, delivered, deliver_code, received_s = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, ttl, events_keep_ms, req_id, message_id = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local code_prefix, mobile, voice_limit, voice_ttl_ms = ARGV[10], ARGV[11], tonumber(ARGV[12]), ARGV[13]
local message_field, message_value = ARGV[14], ARGV[15]
-- message_field and message_value: message_id as a job record keeps it (`ib` and its 16
-- bytes, or `i` and the id; '' for none: message_id_field in store/mod.rs).

local job_id = nil
if req_id ~= '' then
  local job = redis.call('HMGET', req_job_key, 's', 'status', 'i', 'ib', 'provider_message_id',
    'm', 'mobile')
  local status, sent_as = job[1] or job[2], job[3] or job[4] or job[5]
  local ours = (job[6] or (job[7] and short_mobile(job[7]))) == short_mobile(mobile)
  local reported = status == 'sent' or status == 'delivered' or status == 'undelivered'
  local same = (job[3] or job[5]) == message_id
    or (message_field == 'ib' and job[4] == message_value)
  if ours and reported and same then
    job_id = req_id
  elseif ours and status == 'sent' and (not sent_as or sent_as == '') then
    if message_field ~= '' then redis.call('HSET', req_job_key, message_field, message_value) end
    job_id = req_id
  end
end
-- The index: Tencent's reports, and jobs sent before reports were matched by their reqId.
if not job_id then job_id = redis.call('GET', sid_key) end
if not job_id then
  if redis.call('EXISTS', early_key) == 1 then return {'duplicate'} end
  redis.call('HSET', early_key, 'delivered', delivered, 'deliver_code', deliver_code,
    'received_s', received_s)
  redis.call('EXPIRE', early_key, 3600)
  return {'early'}
end
-- The job record shares the tag; its key is derived from the index.
local job_key = job_prefix .. job_id
local status = deliver_report(job_key, events, stats, job_id, delivered, deliver_code,
  received_s, now, ttl, events_keep_ms)
if status == 'delivered' then redis.call('HDEL', job_key, 'fallback') end
if status == 'undelivered' and voice_limit > 0 then
  local purpose = redis.call('HMGET', job_key, 'p', 'purpose')
  purpose = purpose[1] or purpose[2]
  local call_id = purpose and fall_back(job_key, job_id, job_prefix,
    code_prefix .. purpose .. ':' .. mobile, stream, events, by_mobile, caps,
    voice_limit, voice_ttl_ms, now, ttl, events_keep_ms)
  if call_id then return {status, job_id, call_id} end
end
return {status, job_id}
