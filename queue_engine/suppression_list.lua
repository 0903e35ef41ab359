-- One page of a list's active entries, walking its buckets in order.
-- KEYS[1]: the scope's meta hash. ARGV: list, now (ms), cursor bucket, cursor member ('' =
-- from the bucket's start), limit, most buckets to walk, then filters ('' = none):
-- address, domain, API_USER, '1' to include entries of no API_USER, created from (ms),
-- created before (ms).
-- Returns {next bucket or '', next member, member, expiry, details, member, ...}; a
-- page may be short when the walk budget runs out: the cursor then says where to go on.
local prefix = string.sub(KEYS[1], 1, -5)
local list, now = ARGV[1], ARGV[2]
local cursor_bucket, cursor_member = ARGV[3], ARGV[4]
local limit, most = tonumber(ARGV[5]), tonumber(ARGV[6])
local f_addr, f_dom, f_au, f_unscoped = ARGV[7], ARGV[8], ARGV[9], ARGV[10] == '1'
local f_from, f_until = tonumber(ARGV[11]), tonumber(ARGV[12])
local function keep(member, details)
  local base, scope = string.match(member, '^([^\t]*)\t?(.*)$')
  if f_addr ~= '' and base ~= f_addr then return false end
  if f_dom ~= '' and base ~= '@' .. f_dom
      and string.sub(base, -#f_dom - 1) ~= '@' .. f_dom then
    return false
  end
  local created, _, _, au = string.match(details or '', '^(%d*)|(%d*)|([^|]*)|([^|]*)|')
  if f_au ~= '' then
    local owner = scope ~= '' and scope or au or ''
    if owner ~= f_au and not (owner == '' and f_unscoped) then return false end
  end
  created = (tonumber(created) or 0) * 1000
  if f_from and created < f_from then return false end
  if f_until and created >= f_until then return false end
  return true
end
local out = {'', ''}
local buckets = redis.call('ZRANGEBYSCORE', prefix .. list .. ':b', cursor_bucket, '+inf',
  'LIMIT', 0, most)
for _, bucket in ipairs(buckets) do
  local z = prefix .. list .. ':z:' .. bucket
  local raw = redis.call('ZRANGEBYSCORE', z, '(' .. now, '+inf', 'WITHSCORES')
  local members, expiry = {}, {}
  for i = 1, #raw, 2 do
    if bucket ~= cursor_bucket or raw[i] > cursor_member then
      members[#members + 1] = raw[i]
      expiry[raw[i]] = raw[i + 1]
    end
  end
  table.sort(members)
  if #members > 0 then
    local details = redis.call('HMGET', prefix .. list .. ':h:' .. bucket, unpack(members))
    for i, member in ipairs(members) do
      if keep(member, details[i]) then
        out[#out + 1] = member
        out[#out + 1] = expiry[member]
        out[#out + 1] = details[i] or ''
        if (#out - 2) / 3 >= limit then
          out[1], out[2] = bucket, member
          return out
        end
      end
    end
  end
end
if #buckets == most then
  out[1] = string.format('%d', tonumber(buckets[#buckets]) + 1)
end
return out
