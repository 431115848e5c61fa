-- A provider call failed. Either the job waits in the retry set for its next attempt, or it
-- ends (`dead` with a copy in the dead-letter stream, or `expired`). The stream entry is
-- acked in the same step, so the job is always in exactly one place.
-- KEYS: 1 job record, 2 events, 3 jobs stream, 4 otp, 5 retry set, 6 dead letters
-- ARGV: 1 job id, 2 stream entry id, 3 group, 4 now (ms), 5 attempt, 6 error,
--       7 provider status, 8 job json for the next attempt, 9 due (ms, '' = no more attempts),
--       10 status ttl (s), 11 events maxlen, 12 final status when no more attempts
--       ('dead' | 'expired'), 13 job json as received (for the dead letter)
local status = redis.call('HGET', KEYS[1], 'status')
if status and TERMINAL[status] then
  settle(KEYS[3], ARGV[3], ARGV[2])
  return status
end
local extra = {'provider_status', ARGV[7]}
if ARGV[9] ~= '' then
  redis.call('ZADD', KEYS[5], ARGV[9], ARGV[8])
  record(KEYS[1], KEYS[2], ARGV[1], 'retrying', ARGV[5], ARGV[6], ARGV[4], ARGV[10], ARGV[11], extra)
else
  if ARGV[12] == 'dead' then
    redis.call('XADD', KEYS[6], '*', 'job', ARGV[13], 'error', ARGV[6], 'attempts', ARGV[5], 'ts', ARGV[4])
  end
  record(KEYS[1], KEYS[2], ARGV[1], ARGV[12], ARGV[5], ARGV[6], ARGV[4], ARGV[10], ARGV[11], extra)
  redis.call('DEL', KEYS[4])
end
settle(KEYS[3], ARGV[3], ARGV[2])
return ARGV[12]
