-- ARGV: channel, kinds ([]), worker id, worker info (JSON: concurrency, in flight, kinds),
--       lease ms, worker ttl ms, clock gap ms, then (job id, delivery)...
-- Marks the worker live (when `info` is given: workers are registered in the default queue
-- only) and renews the leases it still holds in this queue. Returns the ones it lost, as a
-- flat list id, delivery, ...
local worker, info = ARGV[3], ARGV[4]
local lease, wttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = tick(ARGV[7], lease)
if info ~= '' then
  redis.call('ZADD', K.workers, now, worker)
  local gone = redis.call('ZRANGEBYSCORE', K.workers, '-inf', now - wttl)
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', K.workers, '-inf', now - wttl)
    redis.call('HDEL', K.winfo, unpack(gone))
  end
  redis.call('HSET', K.winfo, worker, info)
end
local lost = {}
for i = 8, #ARGV, 2 do
  local id, d = ARGV[i], ARGV[i + 1]
  if holds(load(id), worker, d) then
    redis.call('ZADD', K.leases, 'XX', now + lease, id)
  else
    lost[#lost + 1] = id
    lost[#lost + 1] = d
  end
end
return lost
