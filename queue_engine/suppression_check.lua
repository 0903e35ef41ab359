-- Which entries of one scope (an account, or the global bounce list) match each recipient.
-- KEYS[1]: the scope's meta hash; bucket keys are derived from its prefix.
-- ARGV[1] now (ms); ARGV[2] API_USER ('' when none); ARGV[3] '1' = every match, '0' = the
-- first per list; ARGV[4] lists to check, comma separated; then per recipient:
-- address, its bucket, '@' .. domain, that bucket.
-- Returns per recipient a flat array list, member, expiry, ... (empty when nothing matches).
-- Kinds a list holds no entry of are never looked up: most lists hold only addresses.
local prefix = string.sub(KEYS[1], 1, -5)
local now = tonumber(ARGV[1])
local au = ARGV[2]
local all = ARGV[3] == '1'
local lists = {}
for name in string.gmatch(ARGV[4], '[^,]+') do
  local c = redis.call('HMGET', KEYS[1], name .. ':a', name .. ':d', name .. ':sa', name .. ':sd')
  lists[#lists + 1] = {
    name = name,
    a = tonumber(c[1] or '0') > 0,
    d = tonumber(c[2] or '0') > 0,
    sa = au ~= '' and tonumber(c[3] or '0') > 0,
    sd = au ~= '' and tonumber(c[4] or '0') > 0,
  }
end
local out = {}
for i = 5, #ARGV, 4 do
  local addr, ba, dom, bd = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local found = {}
  for _, l in ipairs(lists) do
    local za = prefix .. l.name .. ':z:' .. ba
    local zd = prefix .. l.name .. ':z:' .. bd
    local tries = {}
    if l.a then tries[#tries + 1] = za; tries[#tries + 1] = addr end
    if l.d then tries[#tries + 1] = zd; tries[#tries + 1] = dom end
    if l.sa then tries[#tries + 1] = za; tries[#tries + 1] = addr .. '\t' .. au end
    if l.sd then tries[#tries + 1] = zd; tries[#tries + 1] = dom .. '\t' .. au end
    for t = 1, #tries, 2 do
      local score = redis.call('ZSCORE', tries[t], tries[t + 1])
      if score and tonumber(score) > now then
        found[#found + 1] = l.name
        found[#found + 1] = tries[t + 1]
        found[#found + 1] = score
        if not all then break end
      end
    end
  end
  out[#out + 1] = found
end
return out
