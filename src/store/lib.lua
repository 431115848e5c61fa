-- Shared helpers, prepended to every smsq script when it is loaded (one EVALSHA per script).
-- Every key a script touches is passed in KEYS and shares one hash tag (Redis Cluster safe).

local TERMINAL = {sent = true, failed = true, dead = true, expired = true, superseded = true,
  delivered = true, undelivered = true}

-- The job record (docs/contract.md "Job records") is a small hash that stays a listpack: short
-- field names, no field longer than 64 bytes in an ordinary job, nothing another field or
-- the key already says. `s` status, `a` attempts, `c` created (ms), `m` the masked number as
-- its first three and last four digits, `p` purpose (code jobs), `k` kind (other jobs), `ps`
-- the provider's status, `i` its message id, `e` the last error, `dt` the handset's receipt
-- (s after `c`), `h` the history. Records written before this layout (`status`, `attempts`,
-- `created_ms`, `hist`) are still read: their fields are the fallbacks below.

-- A job's status, from either layout.
local function status_of(job_key)
  local v = redis.call('HMGET', job_key, 's', 'status')
  return v[1] or v[2]
end

-- The history's status letters (`h`): one byte each instead of the word.
local LETTER = {queued = 'q', sending = 's', sent = 'S', retrying = 'r', failed = 'f',
  dead = 'x', expired = 'e', superseded = 'u', delivered = 'd', undelivered = 'n',
  replayed = 'p'}

-- At most n bytes of s, cut before a UTF-8 continuation byte (never inside a character).
local function clip(s, n)
  if #s <= n then return s end
  local i = n
  while i > 0 do
    local b = string.byte(s, i + 1)
    if b < 0x80 or b >= 0xC0 then break end
    i = i - 1
  end
  return string.sub(s, 1, i)
end

-- The masked number as the record keeps it: `138****8000` → `1388000` (an integer, which a
-- listpack stores in 4 bytes).
local function short_mobile(masked)
  return string.sub(masked, 1, 3) .. string.sub(masked, -4)
end

-- 32 lower-case hex digits as the 16 bytes they spell: a job id found in Redis (a fallback
-- call's). About 9 µs a call: ids the caller knows come packed (JobId::packed, and the
-- message id as `ib` from message_id_field in store/mod.rs).
local function packed_hex(id)
  return (string.gsub(id, '%x%x', function(h) return string.char(tonumber(h, 16)) end))
end

-- A job's own history lives in its record (field `h`): read with the record, kept exactly as
-- long, whatever the traffic. Events are separated by \30; their fields by \31: ms since
-- `c`, the status letter, the attempt, then the error (clipped to 40 bytes) and the provider
-- account when there is one. The newest HISTORY_MAX are kept.
local HISTORY_MAX = 32
local function with_event(hist, created, status, attempt, err, now, account)
  local event = (tonumber(now) - tonumber(created)) .. '\31' .. (LETTER[status] or status)
    .. '\31' .. attempt
  if err ~= '' then err = clip(string.gsub(err, '[\30\31]', ' '), 40) end
  if account and account ~= '' then
    event = event .. '\31' .. err .. '\31' .. account
  elseif err ~= '' then
    event = event .. '\31' .. err
  end
  if not hist then return event end
  hist = hist .. '\30' .. event
  -- An event takes at least 6 bytes with its separator: a shorter history cannot be full,
  -- and need not be counted (the common case, on every transition).
  if #hist < HISTORY_MAX * 6 then return hist end
  local _, events = string.gsub(hist, '\30', '')
  if events + 1 > HISTORY_MAX then
    hist = string.sub(hist, string.find(hist, '\30', 1, true) + 1)
  end
  return hist
end

-- One entry on the events stream, which keeps what is younger than events_keep_ms (a time,
-- not a count: a busy hour never erases an older one's events before their time).
local function event(events_key, now, events_keep_ms, job_id, status, attempt, err)
  redis.call('XADD', events_key, 'MINID', '~', tonumber(now) - tonumber(events_keep_ms), '*',
    'id', job_id, 'status', status, 'attempt', attempt, 'error', err, 'ts', now)
end

-- A status change: the job record (with its history) and one entry on the events stream.
-- A delivery report's code goes into its event (`err`), not into `e`, when it was delivered.
-- A job that ended no longer needs its owner's token. `cur` is the record's `h`, `c` and
-- `created_ms` when the caller has read them already (one read less), else nil.
-- The record's TTL runs from its last change, but for `sending`: an outcome (or a retry)
-- follows it within the attempt and sets the TTL then.
local function record(job_key, events_key, job_id, status, attempt, err, now, ttl, events_keep_ms, extra, account, cur)
  cur = cur or redis.call('HMGET', job_key, 'h', 'c', 'created_ms')
  local created = cur[2] or cur[3] or now
  local fields = {'s', status, 'a', attempt,
    'h', with_event(cur[1], created, status, attempt, err, now, account)}
  if not cur[2] then
    fields[#fields + 1] = 'c'
    fields[#fields + 1] = created
  end
  if err ~= '' and status ~= 'delivered' then
    fields[#fields + 1] = 'e'
    fields[#fields + 1] = clip(err, 64)
  end
  if extra then
    for i = 1, #extra do fields[#fields + 1] = extra[i] end
  end
  redis.call('HSET', job_key, unpack(fields))
  if TERMINAL[status] then redis.call('HDEL', job_key, 'owner') end
  if status ~= 'sending' or not (cur[2] or cur[3]) then redis.call('EXPIRE', job_key, ttl) end
  event(events_key, now, events_keep_ms, job_id, status, attempt, err)
end

-- One more job reached `status` this minute: per-minute counters for `smsq status` (kept two
-- hours), cheaper than re-reading the events stream.
-- The scripts pass their increments as text ('1'): Redis 7.0 prints a Lua number argument
-- with printf, about 0.6 µs each.
local function tally(stats_key, status)
  -- The first count of a status in a minute sets the TTL (again, harmlessly, for a later one).
  if redis.call('HINCRBY', stats_key, status, '1') == 1 then
    redis.call('EXPIRE', stats_key, 7260)
  end
end

-- A dead letter: kept as long as job records (ttl seconds) and at most `cap` of them, the
-- oldest going first (exact trims: each costs what it removes, one entry at a time in steady
-- state). Returns its entry id.
local function bury(dead, now, ttl, cap, fields)
  local id = redis.call('XADD', dead, 'MAXLEN', cap, '*', unpack(fields))
  redis.call('XTRIM', dead, 'MINID', (tonumber(now) - tonumber(ttl) * 1000) .. '-0')
  return id
end

-- The code record (`code:<purpose>:<mobile>`) holds the code's keyed hash, the job that
-- sends it (`job`), the attempts left and the code sealed for that job (`o`), all for the
-- code's TTL. A job that ended drops the sealed code, but only while the record still names
-- it: a newer code's belongs to the newer job. A message job's code_key is its own record,
-- which names no `job`: nothing to drop. Read under pcall: that record may be the broken
-- thing a poison pill is buried for, and must not stop the ack.
local function drop_sealed(code_key, job_id)
  local ok, job = pcall(redis.call, 'HGET', code_key, 'job')
  if ok and job == job_id then redis.call('HDEL', code_key, 'o') end
end

-- Acknowledge and delete a stream entry: done with it, and no payload left behind.
local function settle(stream, group, entry_id)
  redis.call('XACK', stream, group, entry_id)
  redis.call('XDEL', stream, entry_id)
end

-- An earlier answer for the same Idempotency-Key, or nil.
local function idempotent_replay(key, fingerprint)
  if fingerprint == '' then return nil end
  local prev = redis.call('HMGET', key, 'fp', 'response')
  if not prev[1] then return nil end
  if prev[1] == fingerprint then return {'replay', prev[2]} end
  return {'conflict', ''}
end

local function remember_answer(key, fingerprint, response, ttl)
  if fingerprint == '' then return end
  redis.call('HSET', key, 'fp', fingerprint, 'response', response)
  redis.call('EXPIRE', key, ttl)
end

-- The caller's x-request-id on the job record, when it sent one.
local function with_request_id(fields, request_id)
  if request_id ~= '' then
    fields[#fields + 1] = 'rid'
    fields[#fields + 1] = request_id
  end
  return fields
end

-- Lists a job under its number for support's search: `mob:<mobile>` is the newest 50 job ids
-- of the number as 16 bytes each, newest first (one small string per number). `packed` is the
-- job id's 16 bytes.
local INDEX_MAX = 50
local function index_job(by_mobile, packed, ttl)
  local older = redis.call('GET', by_mobile) or ''
  redis.call('SET', by_mobile, packed .. string.sub(older, 1, (INDEX_MAX - 1) * 16), 'EX', ttl)
end

-- Creates the job record, the stream entry and the first event, and lists the job under its
-- number. `m` is the short masked number (short_mobile), fields the job's own (`p`, `k`, …),
-- packed_id the job id's 16 bytes.
local function enqueue(job_key, stream, events, by_mobile, job_id, packed_id, job_json, now, ttl,
    events_keep_ms, m, fields)
  index_job(by_mobile, packed_id, ttl)
  -- Jobs made per Unix hour on this shard (`made`, next to `events` in the same tag), for
  -- `smsq status`'s count of retained records; the first job of an hour drops the hours
  -- older than the records.
  local made = string.gsub(events, 'events$', 'made')
  local hour = math.floor(tonumber(now) / 3600000)
  if redis.call('HINCRBY', made, hour, '1') == 1 then
    for _, h in ipairs(redis.call('HKEYS', made)) do
      if tonumber(h) < hour - math.ceil(tonumber(ttl) / 3600) then redis.call('HDEL', made, h) end
    end
  end
  redis.call('HSET', job_key, 's', 'queued', 'a', 0, 'c', now, 'm', m,
    'h', with_event(nil, now, 'queued', 0, '', now), unpack(fields))
  redis.call('EXPIRE', job_key, ttl)
  redis.call('XADD', stream, '*', 'job', job_json)
  event(events, now, events_keep_ms, job_id, 'queued', 0, '')
end

-- `code.fallback = "voice"`: the code of a text job (`sms_id`, its record `sms_key`) goes out
-- once more, by a call, with the same code. The text's record holds the call's job, built
-- when the code was issued (`fallback`: the JSON of a voice job whose `code_of` is this job),
-- and it is used once; the call's record takes the text's request id (`rid`). Only while this
-- is still the number's current code (not verified, expired or replaced), its sealed code
-- still there, and the day's voice cap not reached. The code record then names the call: the
-- sealed code is the call's to send (it opens with the text's id: `code_of`), and a newer
-- code still supersedes it. caps is the number's caps today (`v`: its voice calls; the key may
-- be new today). Returns the call's job id, or nil.
local function fall_back(sms_key, sms_id, job_prefix, code_key, stream, events,
    by_mobile, caps, voice_limit, voice_ttl_ms, now, ttl, events_keep_ms)
  local rec = redis.call('HMGET', sms_key, 'fallback', 'm', 'p', 'mobile', 'purpose', 'rid')
  rec[2] = rec[2] or (rec[4] and short_mobile(rec[4]))
  rec[3] = rec[3] or rec[5]
  if not rec[1] or rec[1] == '' then return nil end
  local code = redis.call('HMGET', code_key, 'job', 'o')
  if code[1] ~= sms_id or not code[2] then return nil end
  if tonumber(redis.call('HGET', caps, 'v') or '0') >= tonumber(voice_limit) then return nil end
  local call_id = string.match(rec[1], '"id":"(%x+)"')
  if not call_id then return nil end
  redis.call('HSET', code_key, 'job', call_id)
  redis.call('HDEL', sms_key, 'fallback')
  redis.call('HSET', sms_key, 'fallback_job', call_id)
  redis.call('HINCRBY', caps, 'v', '1')
  -- At least voice_ttl_ms: a resend that falls back (issue_code) passes the caps' full TTL, and
  -- a key a delivery report made (until midnight only) must then last as long.
  if redis.call('PTTL', caps) < tonumber(voice_ttl_ms) then
    redis.call('PEXPIRE', caps, voice_ttl_ms)
  end
  enqueue(job_prefix .. call_id, stream, events, by_mobile, call_id, packed_hex(call_id), rec[1],
    now, ttl, events_keep_ms, rec[2] or '', with_request_id({'p', rec[3] or '', 'channel',
    'voice', 'code_of', sms_id}, rec[6] or ''))
  return call_id
end

-- A delivery report for a job: only a `sent` job moves (to `delivered` or `undelivered`); a
-- report never turns a job back, and a duplicate changes nothing. The carrier's code goes
-- into the event; received_s is the handset's receipt (Unix s, '' when the report had none).
-- Returns the new status, or 'duplicate' / 'ignored'.
local function deliver_report(job_key, events, stats, job_id, delivered, deliver_code, received_s, now, ttl, events_keep_ms)
  local cur = redis.call('HMGET', job_key, 's', 'status', 'a', 'attempts', 'c', 'created_ms')
  local current = cur[1] or cur[2]
  if current == 'delivered' or current == 'undelivered' then return 'duplicate' end
  if current ~= 'sent' then return 'ignored' end
  local status = 'undelivered'
  if delivered == '1' then status = 'delivered' end
  local extra = nil
  local created, received = tonumber(cur[5] or cur[6]), tonumber(received_s)
  if received and created then
    extra = {'dt', received - math.floor(created / 1000)}
  end
  record(job_key, events, job_id, status, cur[3] or cur[4] or 0, deliver_code, now, ttl,
    events_keep_ms, extra)
  tally(stats, status)
  return status
end
