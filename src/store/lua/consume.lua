-- A right code is used up: delete the record if it still holds that code (a newer code, or a
-- concurrent verification that won, leaves nothing to consume).
-- KEYS: 1 code record.  ARGV: 1 hash.  Returns 1 if this call consumed the code.
if redis.call('HGET', KEYS[1], 'hash') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
