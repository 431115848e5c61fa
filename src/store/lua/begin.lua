-- A worker takes a job: decides whether it may still be sent and, if so, marks it `sending`
-- and hands back the plain code, all in one step.
-- KEYS: 1 job record, 2 events, 3 jobs stream, 4 otp, 5 code record (any key of the tag for
--       message jobs)
-- ARGV: 1 job id, 2 stream entry id, 3 group, 4 now (ms), 5 attempt, 6 kind,
--       7 expires (ms, '' = never), 8 status ttl (s), 9 events maxlen
-- Returns {'terminal', status} | {'superseded'} | {'expired'} | {'send', code}
local status = redis.call('HGET', KEYS[1], 'status')
if status and TERMINAL[status] then
  -- A reclaimed or replayed entry of a finished job: never overwrite the terminal status.
  redis.call('DEL', KEYS[4])
  settle(KEYS[3], ARGV[3], ARGV[2])
  return {'terminal', status}
end

local function stop(outcome)
  record(KEYS[1], KEYS[2], ARGV[1], outcome, ARGV[5] - 1, '', ARGV[4], ARGV[8], ARGV[9])
  redis.call('DEL', KEYS[4])
  settle(KEYS[3], ARGV[3], ARGV[2])
  return {outcome}
end

local code = ''
if ARGV[6] == 'code' then
  local current = redis.call('HGET', KEYS[5], 'job')
  if current and current ~= ARGV[1] then return stop('superseded') end
  if ARGV[7] ~= '' and tonumber(ARGV[7]) <= tonumber(ARGV[4]) then return stop('expired') end
  code = redis.call('GET', KEYS[4])
  -- No code record or no otp: expired, or already verified or burnt: nothing worth sending.
  if not current or not code then return stop('expired') end
end
record(KEYS[1], KEYS[2], ARGV[1], 'sending', ARGV[5], '', ARGV[4], ARGV[8], ARGV[9])
return {'send', code}
