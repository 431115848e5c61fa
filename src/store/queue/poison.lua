-- An entry no worker can read goes to the dead-letter stream with the reason, then is acked
-- and deleted so it never blocks the pool.
local stream, dead, stats = KEYS[1], KEYS[2], KEYS[3]
local entry_id, group, raw, err, now, ttl, dead_maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
bury(dead, now, ttl, dead_maxlen, {'entry', entry_id, 'job', raw, 'error', err, 'attempts', 0, 'ts', now})
tally(stats, 'dead')
settle(stream, group, entry_id)
return 1
