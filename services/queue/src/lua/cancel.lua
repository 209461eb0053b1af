-- ARGV: prefix, job id, retention ms
-- Returns {1} when cancelled, {0} when the job does not exist, {2, status} when its status
-- does not allow it.
local id, ret = ARGV[2], ARGV[3]
local key = jkey(id)
local f = redis.call('HMGET', key, 'status', 'attempts', 'kind', 'v', 'idem')
if not f[1] then
  return {0}
end
if f[1] == 'queued' then
  redis.call('LREM', p .. 'queued', -1, id)
elseif f[1] == 'scheduled' then
  redis.call('ZREM', p .. 'scheduled', id)
else
  return {2, f[1]}
end
local now = now_ms()
local v = move(id, f[1], 'cancelled', now, f[4], 'finished', now)
retain(id, ret, f[5])
redis.call('HINCRBY', p .. 'stats', 'cancelled', 1)
emit(id, 'cancelled', v, f[2], f[3], now, '', '')
return {1}
