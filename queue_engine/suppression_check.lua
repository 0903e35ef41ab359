-- Which entries of one scope (an account, or the global bounce list) match each recipient.
-- KEYS[1]: the scope's meta hash; bucket keys are derived from its prefix.
-- ARGV[1] now (ms); ARGV[2] API_USER ('' when none); ARGV[3] '1' = every match, '0' = the
-- first per list; ARGV[4] lists to check, comma separated; ARGV[5] the recipients, one
-- line each (address TAB its bucket TAB '@' .. domain TAB that bucket NL): one string
-- costs far less to send and to unpack than four arguments per recipient.
-- Returns only the matches, flat: recipient number (1-based), list, member, expiry, ...
-- Kinds a list holds no entry of are never looked up: most lists hold only addresses,
-- and most recipients match nothing, so the common path is one ZSCORE per list.
local prefix = string.sub(KEYS[1], 1, -5)
local now = tonumber(ARGV[1])
local au = ARGV[2]
local all = ARGV[3] == '1'
local lists = {}
for name in string.gmatch(ARGV[4], '[^,]+') do
  local c = redis.call('HMGET', KEYS[1], name .. ':a', name .. ':d', name .. ':sa', name .. ':sd')
  local l = {
    name = name,
    z = prefix .. name .. ':z:',
    a = tonumber(c[1] or '0') > 0,
    d = tonumber(c[2] or '0') > 0,
    sa = au ~= '' and tonumber(c[3] or '0') > 0,
    sd = au ~= '' and tonumber(c[4] or '0') > 0,
  }
  if l.a or l.d or l.sa or l.sd then lists[#lists + 1] = l end
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
local only = lists[1]
if #lists == 1 and not (only.d or only.sa or only.sd) then
  -- The common case (the bounce list; an account with address entries on one list):
  -- one lookup per recipient, nothing else unpacked.
  local call, z, name = redis.call, only.z, only.name
  for addr, ba in string.gmatch(ARGV[5], '([^\t]*)\t(%d+)\t[^\n]*\n') do
    n = n + 1
    local score = call('ZSCORE', z .. ba, addr)
    if score and tonumber(score) > now then
      out[#out + 1] = n
      out[#out + 1] = name
      out[#out + 1] = addr
      out[#out + 1] = score
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
