-- A worker's heartbeat on its task: renew the lease and record progress.
-- KEYS[1] = running zset (task id -> lease deadline ms)
-- KEYS[2] = task hash
-- ARGV[1] = task id
-- ARGV[2] = the worker's token
-- ARGV[3] = new lease deadline ms
-- ARGV[4..] = field, value pairs to set (rows written, estimated rows)
-- Returns 1, or 0 when the task is no longer this worker's (its lease ran out and
-- another worker took it, or it was deleted): the worker must stop writing.
if redis.call('HGET', KEYS[2], 'worker') ~= ARGV[2] then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
if #ARGV > 3 then
  redis.call('HSET', KEYS[2], unpack(ARGV, 4))
end
return 1
