-- A worker takes a job: decides whether it may still be sent and, if so, marks it `sending`
-- and hands back the plain code, all in one step.
-- Returns {'terminal', status} | {'superseded'} | {'expired'} | {'send', code}
local job_key, events, stream, otp, code_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local job_id, entry_id, group, now, ttl, events_maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local attempt, kind, expires = ARGV[7], ARGV[8], ARGV[9]
-- code_key is the code record for code jobs, any key of the tag for message jobs.

local status = redis.call('HGET', job_key, 'status')
if status and TERMINAL[status] then
  -- A reclaimed or replayed entry of a finished job: never overwrite the terminal status.
  redis.call('DEL', otp)
  settle(stream, group, entry_id)
  return {'terminal', status}
end

local function stop(outcome)
  record(job_key, events, job_id, outcome, attempt - 1, '', now, ttl, events_maxlen)
  redis.call('DEL', otp)
  settle(stream, group, entry_id)
  return {outcome}
end

local code = ''
if kind == 'code' then
  local current = redis.call('HGET', code_key, 'job')
  if current and current ~= job_id then return stop('superseded') end
  if expires ~= '' and tonumber(expires) <= tonumber(now) then return stop('expired') end
  code = redis.call('GET', otp)
  -- No code record or no otp: expired, or already verified or burnt: nothing worth sending.
  if not current or not code then return stop('expired') end
end
record(job_key, events, job_id, 'sending', attempt, '', now, ttl, events_maxlen)
return {'send', code}
