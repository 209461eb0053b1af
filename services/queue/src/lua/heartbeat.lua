-- ARGV: prefix, worker id, concurrency, in flight, lease ms, worker ttl ms, then (job id, attempt)...
-- Marks the worker live and renews the leases it still holds. Returns the ones it lost,
-- as a flat list id, attempt, ...
local worker, conc, inflight = ARGV[2], ARGV[3], ARGV[4]
local lease, wttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
redis.call('ZADD', p .. 'workers', now, worker)
redis.call('ZREMRANGEBYSCORE', p .. 'workers', '-inf', now - wttl)
redis.call('HSET', p .. 'worker:' .. worker, 'concurrency', conc, 'in_flight', inflight)
redis.call('PEXPIRE', p .. 'worker:' .. worker, wttl * 2)
local lost = {}
for i = 7, #ARGV, 2 do
  local id, attempt = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', jkey(id), 'status', 'attempts', 'worker')
  if f[1] == 'processing' and f[2] == attempt and f[3] == worker then
    redis.call('ZADD', p .. 'leases', 'XX', now + lease, id)
  else
    lost[#lost + 1] = id
    lost[#lost + 1] = attempt
  end
end
return lost
