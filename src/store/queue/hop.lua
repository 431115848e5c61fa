-- An attempt moved from one provider account to another without using up an attempt (an
-- account-level fault or throttling): the job's history says so, naming the account that
-- refused. Fenced like settle: only the attempt that owns the job writes. No event on the
-- events stream: the job's status did not change (it is still `sending`).
local job_key = KEYS[1]
local token, now, attempt, err, account, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local job = redis.call('HMGET', job_key, 'owner', 'h', 's', 'status', 'c', 'created_ms')
if job[1] ~= token or (job[3] or job[4]) ~= 'sending' then return 0 end
local created = job[5] or job[6] or now
redis.call('HSET', job_key, 'h', with_event(job[2], created, 'sending', attempt, err, now, account))
redis.call('EXPIRE', job_key, ttl)
return 1
