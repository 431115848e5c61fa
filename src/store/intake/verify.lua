-- Counts a verification attempt before any comparison. The comparison itself happens in the
-- caller, in constant time. The last allowed attempt burns the code whatever its outcome.
-- Returns {'missing'} or {'check', hash, attempts_left, job id}.
local code_key = KEYS[1]
local record = redis.call('HMGET', code_key, 'hash', 'job')
local hash, job = record[1], record[2] or ''
if not hash then return {'missing'} end
local left = redis.call('HINCRBY', code_key, 'attempts', '-1')
if left <= 0 then redis.call('DEL', code_key) end
if left < 0 then return {'missing'} end
return {'check', hash, left, job}
