-- A large list's filter: a bitmap with the bit CRC-32(address or domain) mod size set for
-- every active entry, so that a check skips the list for a recipient whose bit is clear.
-- Bits are never cleared (removed and expired entries leave theirs: a wasted lookup, never
-- a missed block); the engine rebuilds a filter as it fills. KEYS[1]: the scope's meta
-- hash; ARGV[1] the list; ARGV[2] the step:
--   'start', bits, token: a new filter `<list>:fnew` that every add now also marks
--     (suppression_add.lua); the builder then marks every entry already there.
--   'finish', token: the new filter replaces the old one, unless another build has
--     started since (its token differs): a builder that outlived its lock must not
--     install a filter it did not finish. Returns 1 when installed, and frees the
--     builders' lock (`<list>:flock`, SET NX by the builder) if it is still this one's.
--   'drop': no filter (the list shrank).
local prefix = string.sub(KEYS[1], 1, -5)
local list, step = ARGV[1], ARGV[2]
local f, fnew = prefix .. list .. ':f', prefix .. list .. ':fnew'
if step == 'start' then
  local bits = tonumber(ARGV[3])
  redis.call('DEL', fnew)
  redis.call('SETBIT', fnew, bits - 1, 0)
  redis.call('HSET', KEYS[1], list .. ':fnbits', bits, list .. ':ftoken', ARGV[4])
  return 1
end
if step == 'finish' then
  if redis.call('HGET', KEYS[1], list .. ':ftoken') ~= ARGV[3] then return 0 end
  if redis.call('EXISTS', fnew) == 0 then return 0 end
  redis.call('RENAME', fnew, f)
  local bits = redis.call('HGET', KEYS[1], list .. ':fnbits')
  redis.call('HSET', KEYS[1], list .. ':fbits', bits, list .. ':fadds', 0)
  redis.call('HDEL', KEYS[1], list .. ':fnbits', list .. ':ftoken')
  local lock = prefix .. list .. ':flock'
  if redis.call('GET', lock) == ARGV[3] then redis.call('DEL', lock) end
  return 1
end
redis.call('HDEL', KEYS[1], list .. ':fbits', list .. ':fnbits', list .. ':ftoken',
  list .. ':fadds')
redis.call('DEL', f, fnew)
return 1
