-- Apply one delivery outcome to an email record, once.
-- KEYS[1] = email record hash (em:<id>)
-- ARGV[1] = status the record must still have
-- ARGV[2] = attempt count the record must still have
-- ARGV[3..] = field, value pairs to set
-- Returns 1 when applied, 0 when the record moved on (outcome already applied
-- by this or another worker, or the record expired).
local cur = redis.call('HMGET', KEYS[1], 'status', 'attempts')
if cur[1] ~= ARGV[1] or (cur[2] or '0') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
return 1
