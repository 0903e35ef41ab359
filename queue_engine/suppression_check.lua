-- Which entries of one or more scopes (an account, the global bounce list) match each
-- recipient. KEYS: each scope's meta hash; bucket keys are derived from its prefix. On
-- Redis Cluster a call gets one scope (their hash tags differ); on one Redis, all at once.
-- ARGV[1] now (ms); ARGV[2] API_USER ('' when none); ARGV[3] '1' = every match with its
-- member, '0' = the first per list, without it; ARGV[4] the lists to check, comma
-- separated, one group per key, groups separated by ';'; ARGV[5] the recipients, a line
-- each: address TAB bucket TAB high TAB its domain's number NL, where bucket and high are
-- the low and high halves of the address's CRC-32; ARGV[6] the batch's distinct domains,
-- numbered by line: '@' .. domain TAB bucket TAB high NL. One string costs far less to
-- send and to unpack than arguments per recipient; domains are read only when a list
-- holds domain entries.
-- Returns only the matches, flat: recipient number (1-based), list, [member,] expiry, ...
-- Kinds a list holds no entry of are never looked up, and a large list's filter (a
-- bitmap with a bit set for every entry, suppression_filter.lua) answers most misses
-- with one GETBIT on a small hot string instead of a ZSCORE that scans a bucket far
-- off in memory: most recipients match nothing.
local now = tonumber(ARGV[1])
local au = ARGV[2]
local all = ARGV[3] == '1'
local call = redis.call
local lists = {}
local addresses_only = true
local k = 0
for group in string.gmatch(ARGV[4], '[^;]+') do
  k = k + 1
  local meta = KEYS[k]
  local prefix = string.sub(meta, 1, -5)
  for name in string.gmatch(group, '[^,]+') do
    local c = call('HMGET', meta, name .. ':a', name .. ':d', name .. ':sa', name .. ':sd',
      name .. ':fbits')
    local fbits = tonumber(c[5] or '0')
    local l = {
      name = name,
      z = prefix .. name .. ':z:',
      f = fbits > 0 and prefix .. name .. ':f' or nil,
      span = fbits / 65536,
      a = tonumber(c[1] or '0') > 0,
      d = tonumber(c[2] or '0') > 0,
      sa = au ~= '' and tonumber(c[3] or '0') > 0,
      sd = au ~= '' and tonumber(c[4] or '0') > 0,
    }
    if l.a or l.d or l.sa or l.sd then lists[#lists + 1] = l end
    if l.d or l.sa or l.sd then addresses_only = false end
  end
end
local out = {}
if #lists == 0 then return out end
local n = 0
-- Whether list l holds member in bucket b; high places it in the filter (bit = CRC-32
-- modulo the filter's size, a power of two of at least 65,536). Records a match.
local function hit(l, b, high, member)
  if l.f and call('GETBIT', l.f, b + 65536 * (high % l.span)) == 0 then return false end
  local score = call('ZSCORE', l.z .. b, member)
  if score and tonumber(score) > now then
    out[#out + 1] = n
    out[#out + 1] = l.name
    if all then out[#out + 1] = member end
    out[#out + 1] = score
    return not all
  end
  return false
end
if addresses_only then
  -- The common case (lists of addresses only): one lookup per recipient and list.
  local count = #lists
  for addr, b, high in string.gmatch(ARGV[5], '([^\t]*)\t(%d+)\t(%d+)\t%d+\n') do
    n = n + 1
    for i = 1, count do hit(lists[i], b, high, addr) end
  end
  return out
end
local domains = {}
for dom, b, high in string.gmatch(ARGV[6], '([^\t]*)\t(%d+)\t(%d+)\n') do
  domains[#domains + 1] = { dom, b, high }
end
for addr, b, high, d in string.gmatch(ARGV[5], '([^\t]*)\t(%d+)\t(%d+)\t(%d+)\n') do
  local dom, db, dhigh = unpack(domains[tonumber(d)])
  n = n + 1
  for _, l in ipairs(lists) do
    if l.a and hit(l, b, high, addr) then
    elseif l.d and hit(l, db, dhigh, dom) then
    elseif l.sa and hit(l, b, high, addr .. '\t' .. au) then
    elseif l.sd then hit(l, db, dhigh, dom .. '\t' .. au) end
  end
end
return out
