-- Remove entries of one list: given members, or (prune) those expired by now.
-- KEYS[1]: the scope's meta hash. ARGV[1] list; ARGV[2] '1' keeps the details (bounce
-- counts outlive the entry); ARGV[3] mode: 'members' then pairs member, bucket;
-- or 'expired', now (ms), first bucket, how many buckets at most.
-- Returns {removed count, next bucket or -1 when the walk is done ('members': -1)}.
local prefix = string.sub(KEYS[1], 1, -5)
local list, keep = ARGV[1], ARGV[2] == '1'
local index = prefix .. list .. ':b'
local removed = 0
local function remove(member, bucket)
  local z = prefix .. list .. ':z:' .. bucket
  if redis.call('ZREM', z, member) == 1 then
    removed = removed + 1
    redis.call('HINCRBY', KEYS[1], list, -1)
    redis.call('HINCRBY', KEYS[1], list .. ':' .. kind(member), -1)
    if redis.call('EXISTS', z) == 0 then redis.call('ZREM', index, bucket) end
  end
  if not keep then redis.call('HDEL', prefix .. list .. ':h:' .. bucket, member) end
end
if ARGV[3] == 'members' then
  for i = 4, #ARGV, 2 do remove(ARGV[i], ARGV[i + 1]) end
  return {removed, -1}
end
local now, first, most = ARGV[4], ARGV[5], tonumber(ARGV[6])
local buckets = redis.call('ZRANGEBYSCORE', index, first, '+inf', 'LIMIT', 0, most)
for _, bucket in ipairs(buckets) do
  local z = prefix .. list .. ':z:' .. bucket
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now)) do
    remove(member, bucket)
  end
end
if #buckets < most then return {removed, -1} end
return {removed, tonumber(buckets[#buckets]) + 1}
