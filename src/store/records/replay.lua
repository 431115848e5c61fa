-- Puts a dead-lettered job back on the stream with a fresh attempt budget, once: the dead
-- letter is removed in the same step. A code job is replayed only while its code is still
-- the current one (never a stale code), its sealed code still there: in the record (`o`), or
-- for a code a build before that issued, in `otp:<job>` (legacy_otp, which `begin` reads too).
-- Returns {'replayed'} | {'gone'} (no such dead letter, or no job record) | {'stale'}
local dead, stream, events, job_key, code_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local legacy_otp = KEYS[6]
local dead_id, job_id, job_json, kind, now, ttl, events_keep_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

if #redis.call('XRANGE', dead, dead_id, dead_id) == 0 then return {'gone'} end
if redis.call('EXISTS', job_key) == 0 then return {'gone'} end
if kind == 'code' then
  local code = redis.call('HMGET', code_key, 'job', 'o')
  if code[1] ~= job_id then return {'stale'} end
  if not code[2] and redis.call('EXISTS', legacy_otp) == 0 then return {'stale'} end
end
redis.call('XADD', stream, '*', 'job', job_json)
record(job_key, events, job_id, 'replayed', 0, '', now, ttl, events_keep_ms)
redis.call('XDEL', dead, dead_id)
return {'replayed'}
