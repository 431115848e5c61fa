-- A right code is used up: delete the record if it still holds that code (a newer code, or a
-- concurrent verification that won, leaves nothing to consume), and say so on the events
-- stream (`verified`, what the `code.verified` webhook is made from). `burnt` = '1': the last
-- allowed attempt already deleted the record and was right; only the event is written.
-- A used-up code also counts as verified for the prefix guard (prefix '' = not counted: a
-- test number, or no prefix guard). Returns 1 if this call used it up.
local code_key, events, guard_now = KEYS[1], KEYS[2], KEYS[3]
local hash, job_id, now, events_keep_ms, burnt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local prefix, window_ms = ARGV[6], ARGV[7]
if burnt ~= '1' then
  if redis.call('HGET', code_key, 'hash') ~= hash then return 0 end
  redis.call('DEL', code_key)
end
if job_id ~= '' then
  event(events, now, events_keep_ms, job_id, 'verified', 0, '')
end
if prefix ~= '' then
  redis.call('HINCRBY', guard_now, 'v', '1')
  redis.call('HINCRBY', guard_now, 'v:' .. prefix, '1')
  if redis.call('PTTL', guard_now) == -1 then redis.call('PEXPIRE', guard_now, 2 * window_ms) end
end
return 1
