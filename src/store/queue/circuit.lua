-- An account's circuit, shared by every worker (src/worker/accounts.rs says when each op is
-- called). `op`:
--   permit     may a send go through it now? ('closed', 'probe', 'open', 'wait', 'disabled')
--   ok         a send through it succeeded (counts only while probing)
--   transient  a transient error (5xx, timeout): counted over the window; a probe's opens it
--   fault      an account-level fault or throttling: open for `open_ms` at once
--   disable / enable / read   an operator's switch; read changes nothing
-- Returns {state, until_ms, disabled (0/1), reason, answer, errors}: the state after the op,
-- for the worker's cache, the op's answer (permit's verdict, or the state), and the transient
-- errors counted in the current window.
local circuit, audit = KEYS[1], KEYS[2]
local op, now = ARGV[1], tonumber(ARGV[2])
local window, threshold = tonumber(ARGV[3]), tonumber(ARGV[4])
local cool, probes = tonumber(ARGV[5]), tonumber(ARGV[6])
local reason, open_ms, by = ARGV[7], tonumber(ARGV[8]), ARGV[9]

local h = redis.call('HMGET', circuit, 'state', 'until', 'disabled', 'reason', 'wstart', 'werrs',
  'probes', 'probe_ok', 'probe_ms')
local state, until_ms = h[1] or 'closed', tonumber(h[2] or '0')
local disabled, why = h[3] == '1', h[4] or ''

local function trail(action, text)
  redis.call('XADD', audit, 'MAXLEN', '~', 1000, '*', 'action', action, 'by', by,
    'reason', text, 'ts', now)
end

local function open(ms, text)
  local to = now + ms
  if state == 'open' and until_ms > to then to = until_ms end
  if state ~= 'open' then
    trail('provider_open', text)
    redis.call('HINCRBY', circuit, 'opened', '1')
  end
  redis.call('HSET', circuit, 'state', 'open', 'until', to, 'reason', text)
  redis.call('HDEL', circuit, 'wstart', 'werrs', 'probes', 'probe_ok', 'probe_ms')
  state, until_ms, why = 'open', to, text
end

-- Past its cool-down an open circuit is half open: probes decide.
if state == 'open' and now >= until_ms then
  redis.call('HSET', circuit, 'state', 'half', 'probes', 0, 'probe_ok', 0)
  redis.call('HDEL', circuit, 'probe_ms')
  state, h[7], h[8], h[9] = 'half', '0', '0', false
end

local answer = state
if op == 'permit' then
  if disabled then
    answer = 'disabled'
  elseif state == 'half' then
    local given = tonumber(h[7] or '0')
    -- Probes handed out and never answered (their worker died) are handed out again.
    if given >= probes and now - tonumber(h[9] or '0') > cool then
      given = 0
      redis.call('HSET', circuit, 'probe_ok', 0)
    end
    if given < probes then
      redis.call('HSET', circuit, 'probes', given + 1, 'probe_ms', now)
      answer = 'probe'
    else
      answer = 'wait'
    end
  end
elseif op == 'ok' then
  if state == 'half' and redis.call('HINCRBY', circuit, 'probe_ok', '1') >= probes then
    redis.call('HDEL', circuit, 'state', 'until', 'reason', 'wstart', 'werrs', 'probes',
      'probe_ok', 'probe_ms')
    trail('provider_closed', probes .. ' probe sends went through')
    state, why = 'closed', ''
  end
elseif op == 'transient' then
  if state == 'half' then
    open(cool, 'a probe failed: ' .. reason)
  elseif state == 'closed' then
    local n
    if now - tonumber(h[5] or '0') > window then
      redis.call('HSET', circuit, 'wstart', now, 'werrs', 1)
      n = 1
    else
      n = redis.call('HINCRBY', circuit, 'werrs', '1')
    end
    if n >= threshold then open(cool, n .. ' transient errors within the window: ' .. reason) end
  end
elseif op == 'fault' then
  open(open_ms, reason)
elseif op == 'disable' then
  if not disabled then trail('provider_disable', reason) end
  redis.call('HSET', circuit, 'disabled', '1')
  disabled = true
elseif op == 'enable' then
  if disabled then trail('provider_enable', reason) end
  redis.call('HDEL', circuit, 'disabled')
  disabled = false
elseif op ~= 'read' then
  return redis.error_reply('circuit: unknown op ' .. op)
end
if state == 'closed' then until_ms = 0 end
local w = redis.call('HMGET', circuit, 'wstart', 'werrs')
local errors = 0
if now - tonumber(w[1] or '0') <= window then errors = tonumber(w[2] or '0') end
return {state, until_ms, disabled and 1 or 0, why, answer, errors}
