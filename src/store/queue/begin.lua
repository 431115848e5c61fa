-- A worker takes a job: decides whether it may still be sent and, if so, marks it `sending`
-- and hands back the sealed code, all in one step.
-- Returns {'terminal', status} | {'overtaken', status} | {'superseded'} | {'expired'} |
--         {'send', code, request_id} | {'poison', deliveries}
-- request_id is the record's `rid` ('' without one): the payload no longer carries it.
local job_key, events, stream, stats, code_key, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local legacy_otp = KEYS[7]
local job_id, entry_id, group, now, ttl, events_keep_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local attempt, kind, expires, max_deliveries, job_json = ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]), ARGV[11]
local dead_maxlen, token = ARGV[12], ARGV[13]
-- code_key is the code record for code jobs, any key of the tag for message jobs.

-- A finished job's entry (reclaimed, replayed, redelivered) is only acked: its terminal
-- status stands, however often the entry came back. Checked first; read under pcall because
-- the job record may be the very thing that is broken (then the poison check below ends it).
-- The history and creation time are read with the status: `record` below needs them.
local read_ok, cur = pcall(redis.call, 'HMGET', job_key, 's', 'status', 'h', 'c', 'created_ms',
  'a', 'attempts', 'rid')
local status = read_ok and (cur[1] or cur[2])
local known = read_ok and {cur[3], cur[4], cur[5]} or nil
if status and TERMINAL[status] then
  drop_sealed(code_key, job_id)
  settle(stream, group, entry_id)
  return {'terminal', status}
end
-- An entry of an attempt the job is already past: a worker frozen mid-send, taken for dead,
-- woke and wrote this attempt's retry after another worker had claimed the entry (or the
-- retry began already). The retry is the job's next attempt; this entry must not be sent as
-- well. A takeover of the attempt in flight (`sending`, the same attempt) goes on: it is
-- fenced, and the provider knows the reqId.
local recorded = read_ok and tonumber(cur[6] or cur[7] or '')
if status and recorded and (recorded > tonumber(attempt)
    or recorded == tonumber(attempt) and status == 'retrying') then
  settle(stream, group, entry_id)
  return {'overtaken', status}
end

-- A poison pill: delivered again and again without ever finishing (it crashes the worker, or
-- a script fails on it every time). Checked before anything else that might be what fails;
-- max_deliveries is 0 for an entry read as new (delivered once: nothing to count).
local deliveries = 0
if max_deliveries > 0 then
  local pending = redis.call('XPENDING', stream, group, entry_id, entry_id, 1)
  deliveries = pending[1] and pending[1][4] or 0
end
if max_deliveries > 0 and deliveries > max_deliveries then
  local err = 'delivered ' .. deliveries .. ' times without finishing'
  local letter = bury(dead, now, ttl, dead_maxlen, {'entry', entry_id, 'job', job_json,
    'error', err, 'attempts', attempt - 1, 'ts', now})
  -- The job record may be the very thing that is broken: record the end if it can be.
  pcall(record, job_key, events, job_id, 'dead', attempt - 1, err, now, ttl, events_keep_ms,
    {'dead_entry', letter})
  tally(stats, 'dead')
  drop_sealed(code_key, job_id)
  settle(stream, group, entry_id)
  return {'poison', tostring(deliveries)}
end

local function stop(outcome)
  record(job_key, events, job_id, outcome, attempt - 1, '', now, ttl, events_keep_ms, nil, nil, known)
  tally(stats, outcome)
  drop_sealed(code_key, job_id)
  settle(stream, group, entry_id)
  return {outcome}
end

local code = ''
if kind == 'code' then
  local rec = redis.call('HMGET', code_key, 'job', 'o')
  local current = rec[1]
  if current and current ~= job_id then return stop('superseded') end
  if expires ~= '' and tonumber(expires) <= tonumber(now) then return stop('expired') end
  code = rec[2]
  -- A code an older build issued (during an upgrade) has its sealed code in an `otp` key of
  -- its own, which lives as long as the code: read, never written.
  if current == job_id and not code then code = redis.call('GET', legacy_otp) end
  -- No code record or no sealed code: expired, or already verified or burnt: nothing worth
  -- sending.
  if not current or not code then return stop('expired') end
end
-- This attempt owns the job now: only its outcome (or anyone's `sent`) will be written.
record(job_key, events, job_id, 'sending', attempt, '', now, ttl, events_keep_ms, {'owner', token},
  nil, known)
return {'send', code, cur[8] or ''}
