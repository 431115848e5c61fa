-- POST /v1/messages: a notification job.
local idem, stream, events, job_key, by_mobile = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local fingerprint, answer, answer_ttl, now, job_id, job_json = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local stream_maxlen, events_keep_ms, ttl, masked, template_id = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local request_id, packed_id = ARGV[12], ARGV[13]

local replay = idempotent_replay(idem, fingerprint)
if replay then return replay end
if redis.call('XLEN', stream) >= tonumber(stream_maxlen) then
  return {'queue_full', ''}
end
enqueue(job_key, stream, events, by_mobile, job_id, packed_id, job_json, now, ttl, events_keep_ms,
  short_mobile(masked), with_request_id({'k', 'message', 't', template_id}, request_id))
remember_answer(idem, fingerprint, answer, answer_ttl)
return {'ok', ''}
