-- Which entries of one or more scopes (an account, the global bounce list) match each
-- recipient. KEYS: each scope's meta hash; bucket keys are derived from its prefix. On
-- Redis Cluster a call gets one scope (their hash tags differ); on one Redis, all at once.
-- ARGV[1] now (ms); ARGV[2] API_USER ('' when none); ARGV[3] '1' = every match, '0' = the
-- first per list; ARGV[4] the lists to check, comma separated, one group per key,
-- groups separated by ';'; ARGV[5] the recipients, one line each (address TAB its bucket
-- TAB '@' .. domain TAB that bucket NL): one string costs far less to send and to unpack
-- than four arguments per recipient.
-- Returns only the matches, flat: recipient number (1-based), list, member, expiry, ...
-- Kinds a list holds no entry of are never looked up: most lists hold only addresses,
-- and most recipients match nothing, so the common path is one ZSCORE per list.
local now = tonumber(ARGV[1])
local au = ARGV[2]
local all = ARGV[3] == '1'
local lists = {}
local addresses_only = true
local k = 0
for group in string.gmatch(ARGV[4], '[^;]+') do
  k = k + 1
  local meta = KEYS[k]
  local prefix = string.sub(meta, 1, -5)
  for name in string.gmatch(group, '[^,]+') do
    local c = redis.call('HMGET', meta, name .. ':a', name .. ':d', name .. ':sa', name .. ':sd')
    local l = {
      name = name,
      z = prefix .. name .. ':z:',
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
local n = 0
local function hit(key, member, list)
  local score = redis.call('ZSCORE', key, member)
  if score and tonumber(score) > now then
    out[#out + 1] = n
    out[#out + 1] = list
    out[#out + 1] = member
    out[#out + 1] = score
    return not all
  end
  return false
end
if #lists == 0 then return out end
if addresses_only then
  -- The common case (lists of addresses only): one lookup per recipient and list,
  -- nothing else unpacked.
  local call = redis.call
  for addr, ba in string.gmatch(ARGV[5], '([^\t]*)\t(%d+)\t[^\n]*\n') do
    n = n + 1
    for i = 1, #lists do
      local l = lists[i]
      local score = call('ZSCORE', l.z .. ba, addr)
      if score and tonumber(score) > now then
        out[#out + 1] = n
        out[#out + 1] = l.name
        out[#out + 1] = addr
        out[#out + 1] = score
      end
    end
  end
  return out
end
for addr, ba, dom, bd in string.gmatch(ARGV[5], '([^\t]*)\t(%d+)\t([^\t]*)\t(%d+)\n') do
  n = n + 1
  for _, l in ipairs(lists) do
    if l.a and hit(l.z .. ba, addr, l.name) then
    elseif l.d and hit(l.z .. bd, dom, l.name) then
    elseif l.sa and hit(l.z .. ba, addr .. '\t' .. au, l.name) then
    elseif l.sd then hit(l.z .. bd, dom .. '\t' .. au, l.name) end
  end
end
return out
