-- Put a failed export task back in the queue, as new.
-- KEYS[1] = failed zset (task id -> expiry ms)
-- KEYS[2] = pending zset (task id -> queued ms)
-- KEYS[3] = task hash
-- ARGV[1] = task id
-- ARGV[2] = now ms
-- Returns 1, or 0 when the task is not failed (a retry clicked twice changes nothing).
if redis.call('HGET', KEYS[3], 'status') ~= 'failed' then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HDEL', KEYS[3], 'error', 'started_ms', 'finished_ms', 'expires_ms', 'estimate',
  'file', 'size')
redis.call('HSET', KEYS[3], 'status', 'pending', 'attempts', 0, 'rows', 0)
return 1
