-- ARGV: prefix, worker id, then (job id, attempt)...
-- Gives leased jobs back (graceful shutdown): queued again at the front; the delivery does
-- not count towards max attempts.
local worker = ARGV[2]
local now = now_ms()
for i = 3, #ARGV, 2 do
  local id, attempt = ARGV[i], ARGV[i + 1]
  local key = jkey(id)
  local f = redis.call('HMGET', key, 'status', 'attempts', 'worker', 'kind', 'v')
  if f[1] == 'processing' and f[2] == attempt and f[3] == worker then
    redis.call('ZREM', p .. 'leases', id)
    local a = tonumber(f[2]) - 1
    local v = move(id, 'processing', 'queued', now, f[5], 'attempts', a)
    redis.call('LPUSH', p .. 'queued', id)
    redis.call('LPUSH', p .. 'wake', '1')
    redis.call('LTRIM', p .. 'wake', 0, 63)
    emit(id, 'queued', v, a, f[4], now, worker, 'released by stopping worker')
  end
end
return 1
