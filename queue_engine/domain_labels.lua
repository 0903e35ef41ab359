-- Change the set of recipient domains that have their own metric label.
-- KEYS[1] = set of labelled domains
-- ARGV[1] = most domains the set may hold
-- ARGV[2] = how many domains to remove, then those domains, then domains to add
-- Removals go first; additions stop once the set is full, so two processes
-- adding at the same time never take it past the limit.
-- Returns the set after the change.
local limit = tonumber(ARGV[1])
local removals = tonumber(ARGV[2])
if removals > 0 then
  redis.call('SREM', KEYS[1], unpack(ARGV, 3, 2 + removals))
end
local size = redis.call('SCARD', KEYS[1])
for i = 3 + removals, #ARGV do
  if size >= limit then
    break
  end
  size = size + redis.call('SADD', KEYS[1], ARGV[i])
end
return redis.call('SMEMBERS', KEYS[1])
