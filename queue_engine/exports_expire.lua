-- Delete an export task whose time is up (SPEC X3); its file goes after this.
-- KEYS[1] = the success or failed zset (task id -> expiry ms)
-- KEYS[2] = task hash
-- KEYS[3] = the account's task zset
-- ARGV[1] = task id
-- ARGV[2] = now ms
-- Returns 1 deleted, 0 not due (retried, or another worker deleted it first).
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expiry or tonumber(expiry) > tonumber(ARGV[2]) then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
