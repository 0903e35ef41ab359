-- Everything the queue table shows about one queue, in one call.
-- KEYS[1] = ready zset, KEYS[2] = lease zset, KEYS[3] = pause hash,
-- KEYS[4], KEYS[5], KEYS[6] = inbound, attempted, outbound windows (see windows.lua)
-- ARGV[1] = now (epoch seconds), ARGV[2..] = windows in seconds, longest last
-- Returns {ready, leased, reason, since_ms, until_ms, mp_reply, then per counter and
-- per window the number of events in the window's complete seconds}.
local K = 1048576
local now = tonumber(ARGV[1])
local longest = tonumber(ARGV[#ARGV])
local pause = redis.call('HMGET', KEYS[3], 'reason', 'since_ms', 'until_ms', 'mp_reply')
local out = {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]),
             pause[1] or '', pause[2] or '', pause[3] or '', pause[4] or ''}
for c = 4, 6 do
  local buckets = redis.call('ZRANGEBYSCORE', KEYS[c], (now - longest) * K, now * K - 1,
                             'WITHSCORES')
  for w = 2, #ARGV do
    local start = now - tonumber(ARGV[w])
    local sum = 0
    for i = 1, #buckets, 2 do
      local second = tonumber(buckets[i])
      if second >= start then
        sum = sum + tonumber(buckets[i + 1]) - second * K
      end
    end
    out[#out + 1] = sum
  end
end
return out
