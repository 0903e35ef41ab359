-- Pause a queue, or lengthen its pause; a shorter pause never cuts a longer one.
-- KEYS[1] = pause hash
-- ARGV[1] = reason, ARGV[2] = now ms, ARGV[3] = until ms, ARGV[4] = MP reply
-- Returns the pause's end (ms) after the call.
local current = tonumber(redis.call('HGET', KEYS[1], 'until_ms') or '0')
if current >= tonumber(ARGV[3]) then
  return current
end
if current <= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'since_ms', ARGV[2])
end
redis.call('HSET', KEYS[1], 'reason', ARGV[1], 'until_ms', ARGV[3], 'mp_reply', ARGV[4])
return tonumber(ARGV[3])
