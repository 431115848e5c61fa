-- A right code is used up: delete the record if it still holds that code (a newer code, or a
-- concurrent verification that won, leaves nothing to consume), and say so on the events
-- stream (`verified`, what the `code.verified` webhook is made from). `burnt` = '1': the last
-- allowed attempt already deleted the record and was right; only the event is written.
-- Returns 1 if this call used it up.
local code_key, events = KEYS[1], KEYS[2]
local hash, job_id, now, events_maxlen, burnt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if burnt ~= '1' then
  if redis.call('HGET', code_key, 'hash') ~= hash then return 0 end
  redis.call('DEL', code_key)
end
if job_id ~= '' then
  redis.call('XADD', events, 'MAXLEN', '~', events_maxlen, '*',
    'id', job_id, 'status', 'verified', 'attempt', 0, 'error', '', 'ts', now)
end
return 1
