-- Counts a verification attempt before any comparison. The comparison itself happens in the
-- caller, in constant time. The last allowed attempt burns the code whatever its outcome.
-- Returns {'missing'} or {'check', hash, attempts_left}.
local code_key = KEYS[1]
local hash = redis.call('HGET', code_key, 'hash')
if not hash then return {'missing'} end
local left = redis.call('HINCRBY', code_key, 'attempts', -1)
if left <= 0 then redis.call('DEL', code_key) end
if left < 0 then return {'missing'} end
return {'check', hash, left}
