-- ARGV: prefix, job id, attempt, outcome ('done' | 'retry' | 'fail'), result or error,
--       retention ms, backoff ms
-- Applies one worker report if the worker still holds that delivery (attempt is the fencing
-- token). Returns 1 when applied, 0 when stale.
local id, attempt, outcome, payload = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ret, backoff = ARGV[6], tonumber(ARGV[7])
local key = jkey(id)
local f = redis.call('HMGET', key, 'status', 'attempts', 'max', 'kind', 'worker', 'v', 'idem')
if f[1] ~= 'processing' or f[2] ~= attempt then
  return 0
end
redis.call('ZREM', p .. 'leases', id)
local now = now_ms()
if outcome == 'done' then
  local v = move(id, 'processing', 'done', now, f[6], 'result', payload, 'finished', now)
  if f[2] ~= '1' then
    -- an earlier delivery may have left an error behind
    redis.call('HDEL', key, 'error')
  end
  retain(id, ret, f[7])
  redis.call('HINCRBY', p .. 'stats', 'done', 1)
  emit(id, 'done', v, f[2], f[4], now, f[5], '')
elseif outcome == 'retry' and tonumber(f[2]) < tonumber(f[3]) then
  local at = now + backoff
  local v = move(id, 'processing', 'scheduled', now, f[6], 'error', payload, 'run_at', at)
  redis.call('ZADD', p .. 'scheduled', at, id)
  redis.call('HINCRBY', p .. 'stats', 'retried', 1)
  emit(id, 'scheduled', v, f[2], f[4], now, f[5], payload)
else
  local v = move(id, 'processing', 'failed', now, f[6], 'error', payload, 'finished', now)
  retain(id, ret, f[7])
  redis.call('HINCRBY', p .. 'stats', 'failed', 1)
  emit(id, 'failed', v, f[2], f[4], now, f[5], payload)
end
return 1
