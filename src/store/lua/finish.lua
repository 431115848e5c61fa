-- A job reached a terminal status after a provider call: write it, then drop the plain code,
-- then ack and delete the entry. One script, so no crash can separate them.
-- KEYS: 1 job record, 2 events, 3 jobs stream, 4 otp
-- ARGV: 1 job id, 2 stream entry id, 3 group, 4 now (ms), 5 status, 6 attempt, 7 error,
--       8 provider status, 9 provider message id, 10 status ttl (s), 11 events maxlen
local status = redis.call('HGET', KEYS[1], 'status')
if not (status and TERMINAL[status]) then
  record(KEYS[1], KEYS[2], ARGV[1], ARGV[5], ARGV[6], ARGV[7], ARGV[4], ARGV[10], ARGV[11],
    {'provider_status', ARGV[8], 'provider_message_id', ARGV[9]})
end
redis.call('DEL', KEYS[4])
settle(KEYS[3], ARGV[3], ARGV[2])
return status or ''
