-- The fleet's send rate: a GCRA on Redis's own clock (one clock for every host), handing out
-- send slots in small batches. See src/worker/limiter.rs for why this is exact.
-- Returns {n, now, offset_1, …, offset_n}: n slots, each µs after `now` (µs, Redis clock); or
-- {0, now, wait}: no slot within the horizon, ask again in `wait` µs (a pause's remainder, or
-- until the next slot comes within the horizon). While an operator's halt is on, no slot at
-- all: ask again within a second (a resume is noticed that fast).
local rate_key, pause_key, halt_key = KEYS[1], KEYS[2], KEYS[3]
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local want, horizon = tonumber(ARGV[3]), tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local halted = redis.call('PTTL', halt_key)
if halted == -1 or halted > 1000 then return {0, now, 1000000} end
if halted > 0 then return {0, now, halted * 1000} end
local paused = redis.call('PTTL', pause_key)
if paused > 0 then return {0, now, paused * 1000} end

local tat = tonumber(redis.call('GET', rate_key) or '0')
if tat < now then tat = now end

local reply = {0, now}
while reply[1] < want do
  local at = tat - tolerance
  if at < now then at = now end
  if at - now > horizon then
    if reply[1] == 0 then return {0, now, math.ceil(at - now - horizon)} end
    break
  end
  reply[1] = reply[1] + 1
  reply[#reply + 1] = math.ceil(at - now)
  tat = tat + interval
end
-- The state outlives its last slot by a second, then an idle limiter costs nothing.
redis.call('SET', rate_key, string.format('%.0f', math.ceil(tat)), 'PX', math.floor((tat - now) / 1000) + 1000)
return reply
