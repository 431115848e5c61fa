-- A right code is used up: delete the record if it still holds that code (a newer code, or a
-- concurrent verification that won, leaves nothing to consume). Returns 1 if this call did.
local code_key = KEYS[1]
local hash = ARGV[1]
if redis.call('HGET', code_key, 'hash') == hash then
  redis.call('DEL', code_key)
  return 1
end
return 0
