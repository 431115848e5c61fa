-- Counts a verification attempt before any comparison. The comparison itself happens in the
-- caller, in constant time. The last allowed attempt burns the code whatever its outcome.
-- KEYS: 1 code record.  Returns {'missing'} or {'check', hash, attempts_left}.
local hash = redis.call('HGET', KEYS[1], 'hash')
if not hash then return {'missing'} end
local left = redis.call('HINCRBY', KEYS[1], 'attempts', -1)
if left <= 0 then redis.call('DEL', KEYS[1]) end
if left < 0 then return {'missing'} end
return {'check', hash, left}
