-- Put leased emails back into the ready set for a later attempt.
-- KEYS[1] = ready zset, KEYS[2] = lease zset
-- ARGV = next attempt ms, email id, next attempt ms, email id, ...
-- Only emails still leased move: if the lease already expired and another
-- worker owns the email, its copy stays where it is.
local moved = 0
for i = 1, #ARGV, 2 do
  if redis.call('ZREM', KEYS[2], ARGV[i + 1]) == 1 then
    redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
    moved = moved + 1
  end
end
return moved
