-- Count events into the per-second buckets of one queue's rate windows.
-- KEYS[1] = inbound window, KEYS[2] = attempted window, KEYS[3] = outbound window
-- ARGV[1] = now (epoch seconds)
-- ARGV[2] = seconds of history kept (the longest window plus the current second)
-- ARGV[3], ARGV[4], ARGV[5] = events to add to KEYS[1], KEYS[2], KEYS[3] (0: none)
-- A bucket is member = second, score = second * 2^20 + count (see windows.py).
local K = 1048576
local now = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
for i = 1, 3 do
  local n = tonumber(ARGV[i + 2])
  if n > 0 then
    if redis.call('ZADD', KEYS[i], 'NX', now * K, now) == 1 then
      -- A new second: drop what fell out of the longest window, once a second.
      redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ((now - keep) * K))
      redis.call('EXPIRE', KEYS[i], keep + 1)
    end
    redis.call('ZINCRBY', KEYS[i], math.min(n, K - 1), now)
  end
end
return 1
