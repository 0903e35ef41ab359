-- Add or refresh entries of one list. KEYS[1]: the scope's meta hash.
-- ARGV[1] now (ms); ARGV[2] list; ARGV[3] mode: 'refresh' (created = now: the latest
-- report) or 'upsert' (an active entry keeps its created time); ARGV[4], ARGV[5]: the
-- expiry law in days by count, comma separated, for Tencent ('t') and other mail ('o');
-- then per item: member, hash (the CRC-32 of its address or domain: bucket = its low 16
-- bits), expiry (ms, or 'law:t' / 'law:o'), origin, API_USER, reason.
-- A details value is created (s)|count|origin|api_user|reason: short, so that buckets keep
-- Redis's compact encoding. Details outlive an expired
-- entry only on lists that keep them (the bounce list keeps N, SPEC B3).
-- Returns per item {1 if the entry became active else 0, count, expiry}.
local prefix = string.sub(KEYS[1], 1, -5)
local now, list, mode = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local law = {}
for name, spec in pairs({t = ARGV[4], o = ARGV[5]}) do
  law[name] = {}
  for days in string.gmatch(spec, '[^,]+') do law[name][#law[name] + 1] = tonumber(days) end
end
-- Every entry gets its bit in the list's filter, and in the one being built to replace
-- it (suppression_filter.lua): a check skips the list for a recipient whose bit is clear.
local filters = {}
local sizes = redis.call('HMGET', KEYS[1], list .. ':fbits', list .. ':fnbits')
for j, suffix in ipairs({':f', ':fnew'}) do
  local bits = tonumber(sizes[j] or '0')
  if bits > 0 then filters[#filters + 1] = {prefix .. list .. suffix, bits} end
end
local out = {}
for i = 6, #ARGV, 6 do
  local member, hash, expiry = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local origin, au, reason = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local bucket = string.format('%d', hash % 65536)
  for _, f in ipairs(filters) do redis.call('SETBIT', f[1], hash % f[2], 1) end
  local z = prefix .. list .. ':z:' .. bucket
  local h = prefix .. list .. ':h:' .. bucket
  local old = redis.call('HGET', h, member)
  local active = redis.call('ZSCORE', z, member)
  local created, count = math.floor(now / 1000), 1
  if old then
    local c, n = string.match(old, '^(%d*)|(%d*)|')
    count = (tonumber(n) or 0) + 1
    if mode == 'upsert' and active then created = tonumber(c) or created end
  end
  if string.sub(expiry, 1, 4) == 'law:' then
    local days = law[string.sub(expiry, 5)]
    expiry = now + days[math.min(count, #days)] * 86400000
  else
    expiry = tonumber(expiry)
  end
  redis.call('ZADD', z, expiry, member)
  redis.call('HSET', h, member,
    string.format('%d|%d|%s|%s|%s', created, count, origin, au, reason))
  local new = 0
  if not active then
    new = 1
    redis.call('HINCRBY', KEYS[1], list, 1)
    redis.call('HINCRBY', KEYS[1], list .. ':' .. kind(member), 1)
    redis.call('ZADD', prefix .. list .. ':b', bucket, bucket)
    if #filters > 0 then redis.call('HINCRBY', KEYS[1], list .. ':fadds', 1) end
  end
  out[#out + 1] = {new, count, string.format('%d', expiry)}
end
return out
