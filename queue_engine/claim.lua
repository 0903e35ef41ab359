-- Claim due emails of one queue for delivery.
-- KEYS[1] = ready zset (email id -> next attempt ms)
-- KEYS[2] = lease zset (email id -> lease deadline ms)
-- KEYS[3] = pause hash (reason, since_ms, until_ms, mp_reply)
-- ARGV[1] = now ms
-- ARGV[2] = lease deadline ms for what is claimed now
-- ARGV[3] = how many to claim at most
-- Returns {claimed ids, earliest ms anything in the queue needs a worker or false,
-- 1 if the queue is paused (the second item is then the pause's end) else 0}.
-- Leases past their deadline belong to a worker that died: they go back to
-- ready first, so nothing claimed is ever lost. A paused queue gives nothing
-- until its pause ends; a pause whose time has come ends here.
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
if #expired > 0 then
  local back = {}
  for i, id in ipairs(expired) do
    back[2 * i - 1] = now
    back[2 * i] = id
  end
  redis.call('ZADD', KEYS[1], unpack(back))
  redis.call('ZREM', KEYS[2], unpack(expired))
end
local paused_until = tonumber(redis.call('HGET', KEYS[3], 'until_ms') or '0')
if paused_until > now then
  return {{}, tostring(paused_until), 1}
elseif paused_until > 0 then
  redis.call('DEL', KEYS[3])
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
if #ids > 0 then
  local leased = {}
  for i, id in ipairs(ids) do
    leased[2 * i - 1] = ARGV[2]
    leased[2 * i] = id
  end
  redis.call('ZREM', KEYS[1], unpack(ids))
  redis.call('ZADD', KEYS[2], unpack(leased))
end
local ready = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local lease = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local due = false
if ready[2] then due = tonumber(ready[2]) end
if lease[2] and (not due or tonumber(lease[2]) < due) then due = tonumber(lease[2]) end
if due then due = tostring(due) end
return {ids, due, 0}
