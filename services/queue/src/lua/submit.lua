-- ARGV: channel, id, kind, text, max_attempts, run_at ms ('' = now), idempotency key ('' = none),
--       traceparent ('' = none)
-- Returns {1, id, now, status} for a new job, {0, existing id} when the idempotency key
-- matched, {2, id} when this very job id exists already (a retried submit: idempotent per id).
local id, kind, text, max = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local run_at, idem, tp = tonumber(ARGV[6]), ARGV[7], ARGV[8]
if redis.call('HEXISTS', K.jobs, id) == 1 then
  return {2, id}
end
if idem ~= '' then
  local existing = redis.call('HGET', K.idem, idem)
  if existing and redis.call('HEXISTS', K.jobs, existing) == 1 then
    return {0, existing}
  end
end
local now = now_ms()
local j = { id = id, kind = kind, status = 'queued', attempts = 0, d = 0, max = max,
  created = now, updated = now, v = 1 }
if run_at and run_at > now then
  j.status = 'scheduled'
  j.run_at = run_at
end
if tp ~= '' then
  j.tp = tp
end
if idem ~= '' then
  -- held while the job is unfinished, and for the retention after (removed by sweep)
  j.idem = idem
  redis.call('HSET', K.idem, idem, id)
end
save(j)
redis.call('HSET', K.input, id, text)
if j.status == 'scheduled' then
  redis.call('ZADD', K.scheduled, run_at, id)
  redis.call('ZADD', K.scheduled_idx, 0, id)
else
  -- wake an idle worker; past 64 waiting jobs every worker is busy or already woken
  if redis.call('RPUSH', K.queued, id) <= 64 then
    redis.call('LPUSH', K.wake, '1')
    redis.call('LTRIM', K.wake, 0, 63)
  end
end
redis.call('ZADD', K.all, 0, id)
redis.call('HINCRBY', K.stats, 'submitted', 1)
emit(j)
return {1, id, now, j.status}
