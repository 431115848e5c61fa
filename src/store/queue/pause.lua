-- The provider said the account is going too fast: every worker stops sending until `until`
-- (ms). A pause only ever grows; a shorter one never cuts a longer one short.
-- Returns the pause's end (ms) now in force.
local pause_key = KEYS[1]
local until_ms, now_ms, reason = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local current = redis.call('GET', pause_key)
if current then
  local current_until = tonumber(string.match(current, '^(%d+)'))
  if current_until and current_until >= until_ms then return current_until end
end
if until_ms <= now_ms then return now_ms end
redis.call('SET', pause_key, string.format('%d %s', until_ms, reason), 'PX', until_ms - now_ms)
return until_ms
