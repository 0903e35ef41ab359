-- Pending emails and pause in force of many queues in one call (the metrics scrape).
-- KEYS = for each queue, three keys: ready zset, lease zset, pause hash
-- ARGV[1] = now (ms): a pause whose end has passed is not in force
-- Returns three items per queue: pending (ready + leased), then the reason and
-- since_ms of the pause in force, or '' and '' when there is none.
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS, 3 do
  out[#out + 1] = redis.call('ZCARD', KEYS[i]) + redis.call('ZCARD', KEYS[i + 1])
  local pause = redis.call('HMGET', KEYS[i + 2], 'reason', 'since_ms', 'until_ms')
  if pause[3] and tonumber(pause[3]) > now then
    out[#out + 1] = pause[1]
    out[#out + 1] = pause[2]
  else
    out[#out + 1] = ''
    out[#out + 1] = ''
  end
end
return out
