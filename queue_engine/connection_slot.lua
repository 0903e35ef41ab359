-- Open a connection slot for one (sending IP, provider), if the policy allows it.
-- KEYS[1] = open slots (zset: slot id -> expiry ms)
-- KEYS[2] = this minute's new-connection counter
-- ARGV[1] = now ms, ARGV[2] = slot id, ARGV[3] = slot expiry ms
-- ARGV[4] = connections allowed open at once, ARGV[5] = new connections allowed per minute
-- Returns 0: slot taken; 1: this minute's new connections are used up; 2: too many open.
-- Slots of a dead engine expire, so a crash never locks a provider out.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 2
end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[5]) then
  return 1
end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 120)
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('EXPIRE', KEYS[1], 86400)
return 0
