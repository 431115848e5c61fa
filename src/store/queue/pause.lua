-- The provider said the account is going too fast: every worker stops sending until `until`
-- (ms). A pause only ever grows; a shorter one never cuts a longer one short.
-- Returns the pause's end (ms) now in force.
local pause_key, audit = KEYS[1], KEYS[2]
local until_ms, now_ms, reason = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local current = redis.call('GET', pause_key)
if current then
  local current_until = tonumber(string.match(current, '^(%d+)'))
  if current_until and current_until >= until_ms then return current_until end
end
if until_ms <= now_ms then return now_ms end
redis.call('SET', pause_key, string.format('%d %s', until_ms, reason), 'PX', until_ms - now_ms)
-- In the operators' trail too (a new pause, not each worker's report of the same one).
if not current then
  redis.call('XADD', audit, 'MAXLEN', '~', 1000, '*', 'action', 'provider_pause',
    'by', 'provider ' .. reason, 'reason', 'the provider said too fast', 'until_ms', until_ms,
    'ts', now_ms)
end
return until_ms
