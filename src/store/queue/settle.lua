-- A provider call ended. Its outcome is written, the sealed code dropped once the job ends
-- (a dead code job keeps it until its TTL, for a replay),
-- and the stream entry acked and deleted, in one step: a crash can resend, never lose.
-- A job waiting for its next attempt goes to the retry set; a dead one also to the dead
-- letters. A job that is already terminal (reclaimed, replayed) is only acked.
-- Fenced: only the attempt the job names as its owner writes a failure or a retry; a `sent`
-- is written whoever learned it (the provider accepted it). The entry is acked only while
-- it is still pending with this consumer: one another worker reclaimed is theirs.
local job_key, events, stream, code_key, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local retry, dead, sid_key, early_key = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
-- code_key: the code record of a code job (drop_sealed), the job's own record otherwise.
local job_id, entry_id, group, now, ttl, events_keep_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local outcome, attempt, err, provider_status = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local message_field, message_value = ARGV[11], ARGV[12]
local next_job, received_job, dead_maxlen = ARGV[13], ARGV[14], ARGV[15]
local token, me, account, sid_ttl = ARGV[16], ARGV[17], ARGV[18], tonumber(ARGV[19])
-- message_field and message_value: the provider's message id as the record keeps it (`ib` and
-- its 16 bytes, or `i` and the id; '' for none: message_id_field in store/mod.rs).
-- sid_ttl: how long a delivery report may still come for a `sent` job whose report cannot
-- name it (its account's kind echoes no id of ours: Tencent); 0 when the report names it.

-- The outcome is a status, and for a retry its due time and next attempt (`retrying:<ms>`
-- with `next_job`); nothing else is an outcome.
local status, due = string.match(outcome, '^(%l+):?(%d*)$')
local retrying = status == 'retrying'
local known = status == 'sent' or status == 'failed' or status == 'dead' or status == 'expired'
if not (known and due == '' and next_job == '' or retrying and due ~= '' and next_job ~= '') then
  return redis.error_reply('settle: ' .. outcome .. ' is not an outcome')
end

local function ack_if_ours()
  local p = redis.call('XPENDING', stream, group, entry_id, entry_id, 1)
  if p[1] and p[1][2] == me then settle(stream, group, entry_id) end
end

-- Read once for everything below: `record` takes the history and creation time from here.
local job = redis.call('HMGET', job_key, 's', 'owner', 'dead_entry', 'status', 'fallback', 'h', 'c',
  'created_ms')
local current, owner = job[1] or job[4], job[2]
-- What happened at the provider outranks how smsq gave up on it: a `sent` learned late (a
-- stale worker's send that went through) replaces `dead`, `failed`, `expired` or
-- `superseded`, and takes the dead letter with it so no replay sends it again.
local overtaken = status == 'sent' and current and TERMINAL[current]
  and current ~= 'sent' and current ~= 'delivered' and current ~= 'undelivered'
if overtaken then
  if job[3] then redis.call('XDEL', dead, job[3]) end
elseif current and TERMINAL[current] then
  drop_sealed(code_key, job_id)
  ack_if_ours()
  return current
end
if owner and owner ~= token and status ~= 'sent' then
  ack_if_ours()
  return 'stale'
end
local extra = {'ps', provider_status}
if message_field ~= '' then
  extra[#extra + 1] = message_field
  extra[#extra + 1] = message_value
end
if status == 'retrying' then
  redis.call('ZADD', retry, due, next_job)
elseif status == 'dead' then
  -- The code was never delivered; it stays (until its TTL) so `smsq dlq replay` can send it.
  -- The job record says which letter is its own: a replay by job id reads that one only.
  extra[#extra + 1] = 'dead_entry'
  extra[#extra + 1] = bury(dead, now, ttl, dead_maxlen,
    {'job', received_job, 'error', err, 'attempts', attempt, 'ts', now})
elseif not (status == 'sent' and job[5]) then
  -- A text that may still fall back to a call (`code.fallback`) keeps its sealed code until
  -- the code expires (the code record's TTL); any other end drops it now.
  drop_sealed(code_key, job_id)
end
record(job_key, events, job_id, status, attempt, err, now, ttl, events_keep_ms, extra, account,
  {job[6], job[7], job[8]})
tally(stats, status)
if status == 'sent' and message_field ~= '' then
  -- Where a delivery report that cannot name its job finds it, as long as one may come;
  -- and a report that came before this write.
  if sid_ttl > 0 then redis.call('SET', sid_key, job_id, 'EX', sid_ttl) end
  local early = redis.call('HMGET', early_key, 'delivered', 'deliver_code', 'received_s')
  if early[1] then
    deliver_report(job_key, events, stats, job_id, early[1], early[2], early[3], now, ttl, events_keep_ms)
    redis.call('DEL', early_key)
  end
end
-- Still the owner: the entry is ours, or taken over by a worker that has not begun it yet
-- (its begin will find the job finished and only ack). Acked without asking.
if owner == token then settle(stream, group, entry_id) else ack_if_ours() end
return status
