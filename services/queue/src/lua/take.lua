-- ARGV: channel, worker, max jobs, lease ms, retention ms, clock gap ms, request id ('' = none)
-- KEYS[19] (with a request id): this take's receipt, so a retried take (its reply was lost
-- to a timeout or a broken connection) gets the same batch instead of stranding it.
-- Housekeeping first (due scheduled jobs join the queue, expired leases are redelivered or
-- failed), then leases up to `max` queued jobs to the worker.
-- Returns {now, next due ms or -1, {record JSON, input}...}.
local worker, max, lease, ret = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local gap, rid = ARGV[6], ARGV[7]
local out = {}

if rid ~= '' then
  local receipt = redis.call('GET', KEYS[19])
  if receipt then
    for _, e in ipairs(cjson.decode(receipt)) do
      local j = load(e[1])
      if holds(j, worker, e[2]) then
        out[#out + 1] = cjson.encode(j)
        out[#out + 1] = redis.call('HGET', K.input, j.id) or ''
      end
    end
    return {now_ms(), -1, out}
  end
end

local now = tick(gap)

local due = redis.call('ZRANGEBYSCORE', K.scheduled, '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', K.scheduled, id)
  local j = load(id)
  if j and j.status == 'scheduled' then
    move(j, 'queued', now)
    j.run_at = nil
    save(j)
    redis.call('RPUSH', K.queued, id)
    emit(j)
  end
end

local expired = redis.call('ZRANGEBYSCORE', K.leases, '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  redis.call('ZREM', K.leases, id)
  local j = load(id)
  if j and j.status == 'processing' then
    local who = j.worker or '?'
    if j.attempts >= j.max then
      j.error = 'lease expired after ' .. j.attempts .. ' deliveries (worker ' .. who .. ' lost)'
      finish(j, 'failed', now, ret, 'failed')
    else
      j.error = 'lease expired (worker ' .. who .. ' lost); redelivered'
      move(j, 'queued', now)
      redis.call('LPUSH', K.queued, id)
    end
    save(j)
    emit(j)
  end
end

local receipt = {}
local deadline = now + lease
for _ = 1, max do
  local id = redis.call('LPOP', K.queued)
  if not id then
    break
  end
  local j = load(id)
  if j and j.status == 'queued' then
    move(j, 'processing', now)
    j.attempts = j.attempts + 1
    j.d = (j.d or 0) + 1
    j.started = now
    j.worker = worker
    save(j)
    redis.call('ZADD', K.leases, deadline, id)
    out[#out + 1] = cjson.encode(j)
    out[#out + 1] = redis.call('HGET', K.input, id) or ''
    receipt[#receipt + 1] = {id, j.d}
    emit(j)
  end
end
if rid ~= '' and #receipt > 0 then
  redis.call('SET', KEYS[19], cjson.encode(receipt), 'PX', math.max(lease * 3, 10000))
end

local next_due = -1
local s = redis.call('ZRANGE', K.scheduled, 0, 0, 'WITHSCORES')
if s[2] then
  next_due = tonumber(s[2])
end
local l = redis.call('ZRANGE', K.leases, 0, 0, 'WITHSCORES')
if l[2] and (next_due < 0 or tonumber(l[2]) < next_due) then
  next_due = tonumber(l[2])
end
return {now, next_due, out}
