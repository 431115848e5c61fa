-- Shared helpers, prepended to every smsq script when it is loaded (one EVALSHA per script).
-- Every key a script touches is passed in KEYS and shares one hash tag (Redis Cluster safe).

local TERMINAL = {sent = true, failed = true, dead = true, expired = true, superseded = true,
  delivered = true, undelivered = true}

-- A job's own history lives in its record (field `hist`): read with the record in O(its own
-- events), kept exactly as long, whatever the traffic. Events are separated by \30 and their
-- fields (ts, status, attempt, error, and the provider account when one was used) by \31;
-- the newest HISTORY_MAX are kept.
local HISTORY_MAX = 32
local function with_event(hist, status, attempt, err, now, account)
  local event = now .. '\31' .. status .. '\31' .. attempt .. '\31' .. string.gsub(err, '[\30\31]', ' ')
  if account and account ~= '' then event = event .. '\31' .. account end
  if not hist then return event end
  hist = hist .. '\30' .. event
  local _, events = string.gsub(hist, '\30', '')
  if events + 1 > HISTORY_MAX then
    hist = string.sub(hist, string.find(hist, '\30', 1, true) + 1)
  end
  return hist
end

-- A status change: the job record (with its history) and one entry on the events stream.
local function record(job_key, events_key, job_id, status, attempt, err, now, ttl, events_maxlen, extra, account)
  local hist = with_event(redis.call('HGET', job_key, 'hist'), status, attempt, err, now, account)
  local fields = {'status', status, 'attempts', attempt, 'updated_ms', now, 'hist', hist}
  if err ~= '' then
    fields[#fields + 1] = 'last_error'
    fields[#fields + 1] = err
  end
  if extra then
    for i = 1, #extra do fields[#fields + 1] = extra[i] end
  end
  redis.call('HSET', job_key, unpack(fields))
  redis.call('EXPIRE', job_key, ttl)
  redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*',
    'id', job_id, 'status', status, 'attempt', attempt, 'error', err, 'ts', now)
end

-- One more job reached `status` this minute: per-minute counters for `smsq status` (kept two
-- hours), cheaper than re-reading the events stream.
local function tally(stats_key, status)
  -- The first count of a status in a minute sets the TTL (again, harmlessly, for a later one).
  if redis.call('HINCRBY', stats_key, status, 1) == 1 then
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
    fields[#fields + 1] = 'request_id'
    fields[#fields + 1] = request_id
  end
  return fields
end

-- Creates the job record, the stream entry and the first event, and lists the job under its
-- number (the newest 50, for support's search by mobile).
local function enqueue(job_key, stream, events, by_mobile, job_id, job_json, now, ttl, events_maxlen, fields)
  redis.call('ZADD', by_mobile, now, job_id)
  redis.call('ZREMRANGEBYRANK', by_mobile, 0, -51)
  redis.call('EXPIRE', by_mobile, ttl)
  redis.call('HSET', job_key, 'id', job_id, 'status', 'queued', 'attempts', 0,
    'created_ms', now, 'updated_ms', now, 'hist', with_event(nil, 'queued', 0, '', now),
    unpack(fields))
  redis.call('EXPIRE', job_key, ttl)
  redis.call('XADD', stream, '*', 'job', job_json)
  redis.call('XADD', events, 'MAXLEN', '~', events_maxlen, '*',
    'id', job_id, 'status', 'queued', 'attempt', 0, 'error', '', 'ts', now)
end

-- `code.fallback = "voice"`: the code of a text job (`sms_id`, its record `sms_key`) goes out
-- once more, by a call, with the same code. Its record holds the call's job, built when the
-- code was issued (`fallback`: the JSON of a voice job whose `code_of` is this job), and it
-- is used once. Only while this is still the number's current code (not verified, expired or
-- replaced), its sealed code still there, and the day's voice cap not reached. The sealed code
-- moves to the call's job (it opens with the text's id: `code_of`), and the code record names
-- the call, so a newer code still supersedes it. Returns the call's job id, or nil.
local function fall_back(sms_key, sms_id, job_prefix, otp_prefix, code_key, stream, events,
    by_mobile, voice_key, voice_limit, voice_ttl_ms, now, ttl, events_maxlen)
  local rec = redis.call('HMGET', sms_key, 'fallback', 'mobile', 'purpose')
  if not rec[1] or rec[1] == '' then return nil end
  if redis.call('HGET', code_key, 'job') ~= sms_id then return nil end
  if redis.call('EXISTS', otp_prefix .. sms_id) == 0 then return nil end
  if tonumber(redis.call('GET', voice_key) or '0') >= tonumber(voice_limit) then return nil end
  local call_id = string.match(rec[1], '"id":"(%x+)"')
  if not call_id then return nil end
  redis.call('RENAME', otp_prefix .. sms_id, otp_prefix .. call_id)
  redis.call('HSET', code_key, 'job', call_id)
  redis.call('HDEL', sms_key, 'fallback')
  redis.call('HSET', sms_key, 'fallback_job', call_id)
  if redis.call('INCR', voice_key) == 1 then redis.call('PEXPIRE', voice_key, voice_ttl_ms) end
  enqueue(job_prefix .. call_id, stream, events, by_mobile, call_id, rec[1], now, ttl,
    events_maxlen, {'kind', 'code', 'mobile', rec[2] or '', 'purpose', rec[3] or '',
      'channel', 'voice', 'code_of', sms_id})
  return call_id
end

-- A delivery report for a job: only a `sent` job moves (to `delivered` or `undelivered`); a
-- report never turns a job back, and a duplicate changes nothing.
-- Returns the new status, or 'duplicate' / 'ignored'.
local function deliver_report(job_key, events, stats, job_id, delivered, deliver_code, received_at, now, ttl, events_maxlen)
  local current = redis.call('HMGET', job_key, 'status', 'attempts')
  if current[1] == 'delivered' or current[1] == 'undelivered' then return 'duplicate' end
  if current[1] ~= 'sent' then return 'ignored' end
  local status = 'undelivered'
  local err = deliver_code
  if delivered == '1' then
    status = 'delivered'
    err = ''
  end
  record(job_key, events, job_id, status, current[2] or 0, err, now, ttl, events_maxlen,
    {'deliver_code', deliver_code, 'delivered_at', received_at})
  tally(stats, status)
  return status
end
