-- POST /v1/messages: a notification job.
-- KEYS: 1 idempotency, 2 jobs stream, 3 events, 4 job record
-- ARGV: 1 fingerprint, 2 answer to remember, 3 its ttl (s), 4 now (ms), 5 job id, 6 job json,
--       7 stream maxlen, 8 events maxlen, 9 status ttl (s), 10 masked mobile, 11 template id
local replay = idempotent_replay(KEYS[1], ARGV[1])
if replay then return replay end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[7]) then
  return {'queue_full', ''}
end
enqueue(KEYS[4], KEYS[2], KEYS[3], ARGV[5], ARGV[6], ARGV[4], ARGV[9], ARGV[8],
  {'kind', 'message', 'mobile', ARGV[10], 'template_id', ARGV[11]})
remember_answer(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return {'ok', ''}
