-- Read the same fields of many hashes in one call (export rows, plain Redis only:
-- on a cluster the keys of one call would span slots, and a pipeline is used instead).
-- KEYS = the hashes
-- ARGV = the fields
-- Returns one list of values (false for a missing field) per hash, in order.
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HMGET', key, unpack(ARGV))
end
return out
