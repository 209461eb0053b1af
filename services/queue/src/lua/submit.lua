-- ARGV: prefix, id, kind, text, max_attempts, run_at ms ('' = now), idempotency key, traceparent, retention ms
-- Returns {1, id, now, status} for a new job, {0, existing id} when the idempotency key matched.
local id, kind, text, max = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local run_at, idem, tp, ret = tonumber(ARGV[6]), ARGV[7], ARGV[8], tonumber(ARGV[9])
if idem ~= '' then
  local existing = redis.call('GET', p .. 'idem:' .. idem)
  if existing and redis.call('EXISTS', jkey(existing)) == 1 then
    return {0, existing}
  end
end
local now = now_ms()
local status = 'queued'
if run_at and run_at > now then
  status = 'scheduled'
end
local key = jkey(id)
redis.call('HSET', key, 'id', id, 'kind', kind, 'status', status, 'text', text, 'attempts', 0,
  'max', max, 'created', now, 'updated', now, 'v', 1)
if tp ~= '' then
  redis.call('HSET', key, 'tp', tp)
end
if idem ~= '' then
  local ttl = ret
  if status == 'scheduled' then
    ttl = ttl + (run_at - now)
  end
  redis.call('HSET', key, 'idem', idem)
  redis.call('SET', p .. 'idem:' .. idem, id, 'PX', ttl)
end
if status == 'scheduled' then
  redis.call('HSET', key, 'run_at', run_at)
  redis.call('ZADD', p .. 'scheduled', run_at, id)
else
  -- wake an idle worker; past 64 waiting jobs every worker is busy or already woken
  if redis.call('RPUSH', p .. 'queued', id) <= 64 then
    redis.call('LPUSH', p .. 'wake', '1')
    redis.call('LTRIM', p .. 'wake', 0, 63)
  end
end
redis.call('ZADD', p .. 'all', 0, id)
if status == 'scheduled' then
  redis.call('ZADD', p .. 'status:scheduled', 0, id)
end
redis.call('HINCRBY', p .. 'stats', 'submitted', 1)
emit(id, status, 1, 0, kind, now, '', '')
return {1, id, now, status}
