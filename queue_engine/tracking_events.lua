-- Record one open, click or unsubscribe on an email record; tracking.py's TrackingEvents.
-- KEYS[1] = email record hash (em:<id>)
-- ARGV[1] = field of the kept events: JSON objects, one per line, oldest first
-- ARGV[2] = field of the exact count
-- ARGV[3] = the event, one line of JSON
-- ARGV[4] = how many events to keep
-- Returns the new count, or 0 when the record does not exist: an expired email gets
-- no new key (which would have no TTL), and a forged id could not reach here anyway.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local count = redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
local kept = redis.call('HGET', KEYS[1], ARGV[1])
if not kept or tonumber(ARGV[4]) <= 1 then
  kept = ARGV[3]
else
  kept = kept .. '\n' .. ARGV[3]
  if count > tonumber(ARGV[4]) then
    -- The field held exactly ARGV[4] events: drop the oldest.
    kept = string.sub(kept, string.find(kept, '\n', 1, true) + 1)
  end
end
redis.call('HSET', KEYS[1], ARGV[1], kept)
return count
