-- POST /v1/codes: every check and every write of a new code, or nothing at all.
local idem, stream, events, job_key, by_mobile = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local code_key, caps, prev_caps = KEYS[6], KEYS[7], KEYS[8]
local budget_hour, budget_day, guard_now, guard_prev, blocked = KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local fingerprint, answer, answer_ttl, now, job_id, job_json = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local stream_maxlen, events_keep_ms, ttl, masked = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local purpose, code_hash, sealed_code, code_ttl_ms, resend_ms = ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15]
local hour_field, hourly_limit, hourly_ttl_ms = ARGV[16], tonumber(ARGV[17]), ARGV[18]
local daily_limit, daily_ttl_ms = tonumber(ARGV[19]), ARGV[20]
local verify_attempts, request_id, test = ARGV[21], ARGV[22], ARGV[23]
local guard, prefix, captcha_solved, voice_limit = ARGV[24], ARGV[25], ARGV[26], tonumber(ARGV[27])
local fallback_json, fallback_cap, job_prefix, packed_id = ARGV[28], tonumber(ARGV[29]), ARGV[30], ARGV[31]
-- caps is the number's caps today (Keys::caps): `d` codes, hour_field (`h<hh>`) this hour's,
-- `v` voice calls, `r:<purpose>` when the purpose's resend window ends (Unix ms); prev_caps
-- yesterday's while today is younger than the resend interval, else caps again.
-- hourly_ttl_ms and daily_ttl_ms are what is left of the hour and the day; the caps live one
-- resend interval longer (caps_ttl_ms), for a window that crosses midnight.
-- fingerprint is '' without an Idempotency-Key. sealed_code is the code encrypted for this job
-- (smsq never hands Redis the plain code: SLOWLOG and MONITOR show arguments); it lives in
-- the code record (`o`), as long as the code.
-- guard is the fleet guards' policy for this shard and purpose (`policy` in guard.rs), or ''
-- for a test number, which no guard counts or stops. voice_limit is the day's cap of voice
-- calls to the number for a voice code, 0 for a text. With `code.fallback = "voice"`,
-- fallback_json is the call this text's code falls back to (kept on its record), and
-- fallback_cap the day's voice cap when a resend now falls back (0: it does not). packed_id is
-- the job id's 16 bytes (for the number's index).

-- The policy: twelve integers, caps already divided among the shards (a cap of 0 = none;
-- window_ms 0 = no prefix guard).
-- One match, not a gmatch loop: this runs on every issued code.
local POLICY = '^' .. string.rep('(%d+) ', 11) .. '(%d+)$'
local function policy(text)
  local v = {string.match(text, POLICY)}
  if #v ~= 12 then return nil end
  for i = 1, 12 do v[i] = tonumber(v[i]) end
  return {hour = v[1], day = v[2], p_hour = v[3], p_day = v[4], soft = v[5],
    budget_captcha = v[6] == 1, window = v[7], min_codes = v[8], share = v[9], conv = v[10],
    prefix_captcha = v[11] == 1, block = v[12]}
end

local function num(v) return tonumber(v or '0') or 0 end

-- A prefix the guard tripped and that has not run out: {until ms, action}, or nil.
local function blocked_until(now)
  local entry = redis.call('HGET', blocked, prefix)
  if not entry then return nil end
  local until_ms, action = string.match(entry, '^(%d+) (%a+)')
  if tonumber(until_ms or '0') > now then return tonumber(until_ms), action end
  redis.call('HDEL', blocked, prefix)
  return nil
end

-- A window's budget counts, or zeros without a read when none of its caps is set (0 = none:
-- nothing to compare them with).
local function budget_counts(key, cap_all, cap_purpose)
  if cap_all == 0 and cap_purpose == 0 then return {false, false} end
  return redis.call('HMGET', key, '*', purpose)
end

-- Whether this prefix's recent codes trip the guard (so this one is not issued), and why: a
-- share of the fleet's codes far above any one prefix's, or a conversion far below the fleet's.
local function trips(g)
  local a = redis.call('HMGET', guard_now, 'i', 'v', 'i:' .. prefix, 'v:' .. prefix)
  local b = redis.call('HMGET', guard_prev, 'i', 'v', 'i:' .. prefix, 'v:' .. prefix)
  local fleet_i, fleet_v = num(a[1]) + num(b[1]), num(a[2]) + num(b[2])
  local pre_i, pre_v = num(a[3]) + num(b[3]), num(a[4]) + num(b[4])
  if pre_i < g.min_codes then return nil end
  if pre_i * 100 > g.share * fleet_i then return 'share', pre_i, fleet_i end
  -- conversion: pre_v / pre_i < conv% of fleet_v / fleet_i, once the fleet has verified enough
  if fleet_v >= g.min_codes and pre_v * fleet_i * 100 < g.conv * fleet_v * pre_i then
    return 'conversion', pre_i, fleet_i
  end
  return nil
end

-- The guards' answer before anything is written: nil (go on) or the refusal.
local function guarded(g, now)
  local solved = captcha_solved == '1'
  -- The block is read once and used again below: a prefix already held is not tripped anew.
  local until_ms, action = nil, nil
  if g.window > 0 then
    until_ms, action = blocked_until(now)
    if until_ms and not (action == 'captcha' and solved) then
      return {'guard', 'prefix', action, tostring(until_ms - now), '', '0', '0'}
    end
  end
  local h = budget_counts(budget_hour, g.hour, g.p_hour)
  local d = budget_counts(budget_day, g.day, g.p_day)
  local act = g.budget_captcha and 'captcha' or 'refuse'
  local over = {{num(h[1]), g.hour, 'hourly', '*', budget_hour},
    {num(d[1]), g.day, 'daily', '*', budget_day},
    {num(h[2]), g.p_hour, 'hourly', purpose, budget_hour},
    {num(d[2]), g.p_day, 'daily', purpose, budget_day}}
  for _, b in ipairs(over) do
    if b[2] > 0 and b[1] >= b[2] and not (g.budget_captcha and solved) then
      return {'guard', 'budget', act, tostring(redis.call('PTTL', b[5])), b[3], b[4]}
    end
  end
  if g.window > 0 and not until_ms then
    local why, pre_i, fleet_i = trips(g)
    if why then
      local action = g.prefix_captcha and 'captcha' or 'block'
      redis.call('HSET', blocked, prefix, (now + g.block) .. ' ' .. action .. ' ' .. why .. ' ' .. pre_i .. ' ' .. fleet_i)
      if not (g.prefix_captcha and solved) then
        return {'guard', 'prefix', action, tostring(g.block), why, tostring(pre_i), tostring(fleet_i)}
      end
    end
  end
  return nil
end

-- Counts the code against the budgets and its prefix; returns the budgets it brought to their
-- soft threshold ('' for none), each named once, when the count reaches it.
-- Only this script writes the budget keys, and it counts `*` first: a `*` count of 1 means
-- this call made the window's key, and gives it its TTL in the same atomic step (no PTTL read
-- per count). guard_now is also written by a verification (consume.lua), which sets its own
-- TTL when it makes the key; its `i` count of 1 is this script's first code in the window.
local function count(g)
  local alerts = {}
  local function add(key, field, cap, ttl, name)
    local n = redis.call('HINCRBY', key, field, '1')
    if field == '*' and n == 1 then redis.call('PEXPIRE', key, ttl) end
    if cap > 0 and n == math.max(1, math.ceil(cap * g.soft / 100)) then alerts[#alerts + 1] = name end
  end
  add(budget_hour, '*', g.hour, hourly_ttl_ms, 'hourly:*')
  add(budget_hour, purpose, g.p_hour, hourly_ttl_ms, 'hourly:' .. purpose)
  add(budget_day, '*', g.day, daily_ttl_ms, 'daily:*')
  add(budget_day, purpose, g.p_day, daily_ttl_ms, 'daily:' .. purpose)
  if g.window > 0 then
    if redis.call('HINCRBY', guard_now, 'i', '1') == 1 then
      redis.call('PEXPIRE', guard_now, 2 * g.window)
    end
    redis.call('HINCRBY', guard_now, 'i:' .. prefix, '1')
  end
  return table.concat(alerts, ',')
end

local replay = idempotent_replay(idem, fingerprint)
if replay then return replay end

-- Read once for the resend window and the caps below (a fallback returns before the caps).
local resend_field = 'r:' .. purpose
local used = redis.call('HMGET', caps, hour_field, 'd', 'v', resend_field)
local resend_until = tonumber(used[4] or '0')
if prev_caps ~= caps then
  resend_until = math.max(resend_until, tonumber(redis.call('HGET', prev_caps, resend_field) or '0'))
end
if resend_until > tonumber(now) then
  return {'resend_too_soon', tostring(resend_until - tonumber(now))}
end
local caps_ttl_ms = tonumber(daily_ttl_ms) + tonumber(resend_ms)
local function open_resend_window()
  -- resend_ms 0: a test number's code, which has no resend window.
  if tonumber(resend_ms) > 0 then
    redis.call('HSET', caps, resend_field, tonumber(now) + tonumber(resend_ms))
  end
end
-- A resend after the interval, of a text that went out: the same code, by a call, once
-- (fall_back in lib.lua), instead of a new code. It is the same code, so the code caps do
-- not count it; the voice cap does.
if fallback_cap > 0 then
  local current = redis.call('HGET', code_key, 'job')
  local sent = current and status_of(job_prefix .. current)
  if sent == 'sent' or sent == 'delivered' or sent == 'undelivered' then
    local call_id = fall_back(job_prefix .. current, current, job_prefix, code_key,
      stream, events, by_mobile, caps, fallback_cap, caps_ttl_ms, now, ttl, events_keep_ms)
    if call_id then
      open_resend_window()
      local left = math.max(0, redis.call('PTTL', code_key))
      local called = '{"job_id":"' .. call_id .. '","expires_in":' .. math.floor(left / 1000)
        .. ',"resend_after":' .. math.floor(tonumber(resend_ms) / 1000) .. ',"channel":"voice"}'
      remember_answer(idem, fingerprint, called, answer_ttl)
      return {'fallback', called}
    end
  end
end
if tonumber(used[1] or '0') >= hourly_limit then return {'hourly_limit', hourly_ttl_ms} end
if tonumber(used[2] or '0') >= daily_limit then return {'daily_limit', daily_ttl_ms} end
if voice_limit > 0 and tonumber(used[3] or '0') >= voice_limit then
  return {'voice_limit', daily_ttl_ms}
end
if redis.call('XLEN', stream) >= tonumber(stream_maxlen) then
  return {'queue_full', ''}
end
local g = nil
if guard ~= '' then
  g = policy(guard)
  if not g then return redis.error_reply('issue_code: bad guard policy') end
  local refusal = guarded(g, tonumber(now))
  if refusal then return refusal end
end

-- A newer code replaces the old one: the old job finds itself superseded, and its sealed code
-- goes now. The record has no fields but these four (verify.lua counts `attempts` down,
-- fall_back names another `job`, a job that ended drops `o`): the HSET replaces all of them.
redis.call('HSET', code_key, 'hash', code_hash, 'job', job_id, 'attempts', verify_attempts,
  'o', sealed_code)
redis.call('PEXPIRE', code_key, code_ttl_ms)
open_resend_window()
-- The day's first code made the key, or a fallback call did (which set the same TTL, or a
-- shorter one from a delivery report: set again here). The key lives until the day ends and
-- one resend interval more, its hour fields with it.
if redis.call('HINCRBY', caps, 'd', '1') == 1 then redis.call('PEXPIRE', caps, caps_ttl_ms) end
redis.call('HINCRBY', caps, hour_field, '1')
if voice_limit > 0 then redis.call('HINCRBY', caps, 'v', '1') end
local fields = {'p', purpose}
-- A test number's job says so on its record (SMSQ_TEST_NUMBERS: never sent to the provider).
if test == '1' then fields[#fields + 1] = 'test'; fields[#fields + 1] = '1' end
if voice_limit > 0 then fields[#fields + 1] = 'channel'; fields[#fields + 1] = 'voice' end
if fallback_json ~= '' then fields[#fields + 1] = 'fallback'; fields[#fields + 1] = fallback_json end
enqueue(job_key, stream, events, by_mobile, job_id, packed_id, job_json, now, ttl, events_keep_ms,
  short_mobile(masked), with_request_id(fields, request_id))
remember_answer(idem, fingerprint, answer, answer_ttl)
return {'ok', '', g and count(g) or ''}
