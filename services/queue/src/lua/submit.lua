-- ARGV: channel, kinds ([kind]), id, kind, input, max_attempts, run_at ms ('' = now),
--       idempotency key ('' = none), traceparent ('' = none), content type ('' = text),
--       priority (-10..10)
-- Returns {1, id, now, status} for a new job, {0, existing id} when the idempotency key
-- matched, {2, id} when this very job id exists already (a retried submit: idempotent per id).
local id, kind, input, max = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local run_at, idem, tp, ct = tonumber(ARGV[7]), ARGV[8], ARGV[9], ARGV[10]
local pr = tonumber(ARGV[11]) or 0
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
if pr ~= 0 then
  j.pr = pr
end
if ct and ct ~= '' then
  j.ct = ct
end
if idem ~= '' then
  -- held while the job is unfinished, and for the retention after (removed by sweep)
  j.idem = idem
  redis.call('HSET', K.idem, idem, id)
end
redis.call('SADD', K.kinds, kind)
save(j)
redis.call('HSET', K.input, id, input)
redis.call('ZADD', INDEX[j.status], 0, id)
if j.status == 'scheduled' then
  redis.call('ZADD', K.scheduled, run_at, id)
else
  ready(j, false)
end
redis.call('ZADD', K.all, 0, id)
redis.call('HINCRBY', K.stats, 'submitted', 1)
emit(j)
return {1, id, now, j.status}
