-- An entry no worker can read goes to the dead-letter stream with the reason, then is acked
-- and deleted so it never blocks the pool.
-- KEYS: 1 jobs stream, 2 dead letters.  ARGV: 1 entry id, 2 group, 3 raw payload, 4 error, 5 now
redis.call('XADD', KEYS[2], '*', 'entry', ARGV[1], 'job', ARGV[3], 'error', ARGV[4], 'attempts', 0, 'ts', ARGV[5])
settle(KEYS[1], ARGV[2], ARGV[1])
return 1
