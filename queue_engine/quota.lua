-- Take up to N units of a quota counted in two fixed windows: the hour and the day.
-- KEYS[1] = this hour's counter, KEYS[2] = today's counter
-- ARGV[1] = units wanted (negative: give unused units back)
-- ARGV[2] = hour limit, ARGV[3] = day limit (0: no limit)
-- ARGV[4] = seconds the hour counter lives, ARGV[5] = seconds the day counter lives
-- Returns {units granted, 0 | 1 when the hour ran out | 2 when the day ran out}.
local want = tonumber(ARGV[1])
if want < 0 then
  redis.call('INCRBY', KEYS[1], want)
  redis.call('INCRBY', KEYS[2], want)
  return {0, 0}
end
local granted, limited = want, 0
local hour_limit, day_limit = tonumber(ARGV[2]), tonumber(ARGV[3])
if hour_limit > 0 then
  local left = hour_limit - tonumber(redis.call('GET', KEYS[1]) or '0')
  if left < granted then granted, limited = math.max(left, 0), 1 end
end
if day_limit > 0 then
  local left = day_limit - tonumber(redis.call('GET', KEYS[2]) or '0')
  if left < granted then granted, limited = math.max(left, 0), 2 end
end
if granted > 0 then
  redis.call('INCRBY', KEYS[1], granted)
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('INCRBY', KEYS[2], granted)
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
return {granted, limited}
