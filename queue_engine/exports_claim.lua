-- Take one export task for a worker: a pending one, or a running one whose lease ran out.
-- KEYS[1] = pending zset (task id -> queued ms)
-- KEYS[2] = running zset (task id -> lease deadline ms)
-- KEYS[3] = failed zset (task id -> expiry ms)
-- KEYS[4] = task hash
-- ARGV[1] = task id
-- ARGV[2] = now ms
-- ARGV[3] = lease deadline ms for the new owner
-- ARGV[4] = the new owner's token
-- ARGV[5] = attempts after which a task whose worker keeps dying fails instead
-- ARGV[6] = expiry ms of the task if it fails now
-- ARGV[7] = the error recorded then
-- Returns 1 claimed, 0 not claimable (another worker has it, or it is gone), -1 failed now.
-- A task whose worker died and that has had its attempts fails, so a task that kills
-- every worker it meets (memory, a crash) cannot take the workers down in turn forever.
local id = ARGV[1]
local now = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  return 0
end
if not redis.call('ZSCORE', KEYS[1], id) then
  local deadline = redis.call('ZSCORE', KEYS[2], id)
  if not deadline or tonumber(deadline) > now then
    return 0
  end
  if tonumber(redis.call('HGET', KEYS[4], 'attempts') or '0') >= tonumber(ARGV[5]) then
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZADD', KEYS[3], ARGV[6], id)
    redis.call('HSET', KEYS[4], 'status', 'failed', 'worker', '', 'finished_ms', now,
      'expires_ms', ARGV[6], 'error', ARGV[7])
    return -1
  end
end
redis.call('ZREM', KEYS[1], id)
redis.call('ZADD', KEYS[2], ARGV[3], id)
redis.call('HSET', KEYS[4], 'status', 'running', 'worker', ARGV[4], 'started_ms', now, 'rows', 0)
redis.call('HINCRBY', KEYS[4], 'attempts', 1)
return 1
