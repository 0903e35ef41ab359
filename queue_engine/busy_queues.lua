-- Pending emails and pause of many queues in one call (the metrics scrape).
-- KEYS = for each queue, three keys: ready zset, lease zset, pause hash
-- Returns four items per queue: pending (ready + leased), then the pause's
-- reason, since_ms and until_ms ('' when the queue has no pause record).
local out = {}
for i = 1, #KEYS, 3 do
  local pause = redis.call('HMGET', KEYS[i + 2], 'reason', 'since_ms', 'until_ms')
  out[#out + 1] = redis.call('ZCARD', KEYS[i]) + redis.call('ZCARD', KEYS[i + 1])
  out[#out + 1] = pause[1] or ''
  out[#out + 1] = pause[2] or ''
  out[#out + 1] = pause[3] or ''
end
return out
