-- ARGV: channel, kinds ([]), job id, worker id, delivery, outcome ('done' | 'retry' | 'fail'),
--       result or error, retention ms, backoff ms, result content type ('' = text)
-- Applies one worker report if that worker still holds that delivery (owner + delivery
-- number are the fence). Returns 1 when applied, 2 when this very report was applied before
-- (a retry after a lost reply), 0 when stale.
local id, worker, d, outcome, payload = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local ret, backoff, rt = ARGV[8], tonumber(ARGV[9]), ARGV[10]
local j = load(id)
if not holds(j, worker, d) then
  if j and j.worker == worker and tonumber(j.d) == tonumber(d)
      and (j.status == 'done' or j.status == 'failed' or j.status == 'scheduled') then
    return 2
  end
  return 0
end
redis.call('ZREM', K.leases, id)
local now = now_ms()
local result = nil
if outcome == 'done' then
  j.error = nil
  if rt and rt ~= '' then
    j.rt = rt
  end
  redis.call('HSET', K.output, id, payload)
  result = payload
  finish(j, 'done', now, ret, 'done')
elseif outcome == 'retry' and j.attempts < j.max then
  j.error = payload
  j.run_at = now + backoff
  move(j, 'scheduled', now)
  redis.call('ZADD', K.scheduled, j.run_at, id)
  redis.call('HINCRBY', K.stats, 'retried', 1)
else
  j.error = payload
  finish(j, 'failed', now, ret, 'failed')
end
save(j)
emit(j, result)
return 1
