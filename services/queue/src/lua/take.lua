-- ARGV: prefix, worker id, max jobs, lease ms, retention ms
-- Housekeeping first (due scheduled jobs join the queue, expired leases are redelivered or
-- failed), then leases up to `max` queued jobs to the worker.
-- Returns {now, next due ms or -1, {job hash as flat field list}...}.
local worker, max, lease, ret = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local now = now_ms()

local due = redis.call('ZRANGEBYSCORE', p .. 'scheduled', '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', p .. 'scheduled', id)
  local f = redis.call('HMGET', jkey(id), 'status', 'attempts', 'kind', 'v')
  if f[1] == 'scheduled' then
    local v = move(id, 'scheduled', 'queued', now, f[4])
    redis.call('HDEL', jkey(id), 'run_at')
    redis.call('RPUSH', p .. 'queued', id)
    emit(id, 'queued', v, f[2], f[3], now, '', '')
  end
end

local expired = redis.call('ZRANGEBYSCORE', p .. 'leases', '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  redis.call('ZREM', p .. 'leases', id)
  local f = redis.call('HMGET', jkey(id), 'status', 'attempts', 'max', 'kind', 'worker', 'v', 'idem')
  if f[1] == 'processing' then
    if tonumber(f[2]) >= tonumber(f[3]) then
      local err = 'lease expired after ' .. f[2] .. ' deliveries (worker ' .. (f[5] or '?') .. ' lost)'
      local v = move(id, 'processing', 'failed', now, f[6], 'error', err, 'finished', now)
      retain(id, ret, f[7])
      redis.call('HINCRBY', p .. 'stats', 'failed', 1)
      emit(id, 'failed', v, f[2], f[4], now, f[5], err)
    else
      local err = 'lease expired (worker ' .. (f[5] or '?') .. ' lost); redelivered'
      local v = move(id, 'processing', 'queued', now, f[6], 'error', err)
      redis.call('LPUSH', p .. 'queued', id)
      emit(id, 'queued', v, f[2], f[4], now, f[5], err)
    end
  end
end

local out = {}
local deadline = now + lease
for _ = 1, max do
  local id = redis.call('LPOP', p .. 'queued')
  if not id then
    break
  end
  local key = jkey(id)
  local f = redis.call('HMGET', key, 'status', 'kind', 'attempts', 'v')
  if f[1] == 'queued' then
    local a = tonumber(f[3]) + 1
    local v = move(id, 'queued', 'processing', now, f[4], 'started', now, 'worker', worker, 'attempts', a)
    redis.call('ZADD', p .. 'leases', deadline, id)
    out[#out + 1] = redis.call('HGETALL', key)
    emit(id, 'processing', v, a, f[2], now, worker, '')
  end
end

local next_due = -1
local s = redis.call('ZRANGE', p .. 'scheduled', 0, 0, 'WITHSCORES')
if s[2] then
  next_due = tonumber(s[2])
end
local l = redis.call('ZRANGE', p .. 'leases', 0, 0, 'WITHSCORES')
if l[2] and (next_due < 0 or tonumber(l[2]) < next_due) then
  next_due = tonumber(l[2])
end
return {now, next_due, out}
