-- A worker ends its task: success or failed, kept until its expiry.
-- KEYS[1] = running zset (task id -> lease deadline ms)
-- KEYS[2] = the success or failed zset (task id -> expiry ms)
-- KEYS[3] = task hash
-- ARGV[1] = task id
-- ARGV[2] = the worker's token
-- ARGV[3] = expiry ms
-- ARGV[4..] = field, value pairs to set (status, finished_ms, rows, file, size or error)
-- Returns 1, or 0 when the task is no longer this worker's: its result is discarded.
if redis.call('HGET', KEYS[3], 'worker') ~= ARGV[2] then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[3], 'worker', '', 'expires_ms', ARGV[3], unpack(ARGV, 4))
return 1
