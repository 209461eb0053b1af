-- ARGV: channel, worker id, then (job id, delivery)...
-- Gives leased jobs back (graceful shutdown): queued again at the front; the attempt does
-- not count towards max attempts (the delivery number stays: it is never reused).
local worker = ARGV[2]
local now = now_ms()
local n = 0
for i = 3, #ARGV, 2 do
  local id, d = ARGV[i], ARGV[i + 1]
  local j = load(id)
  if holds(j, worker, d) then
    redis.call('ZREM', K.leases, id)
    j.attempts = j.attempts - 1
    move(j, 'queued', now)
    save(j)
    redis.call('LPUSH', K.queued, id)
    redis.call('LPUSH', K.wake, '1')
    redis.call('LTRIM', K.wake, 0, 63)
    emit(j)
    n = n + 1
  end
end
return n
