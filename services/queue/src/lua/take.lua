-- ARGV: channel, kinds (the worker's kinds first, then every other known kind), worker,
--       number of the worker's kinds, max jobs, lease ms, retention ms, clock gap ms,
--       request id ('' = none)
-- KEYS[21]: this take's receipt, so a retried take (its reply was lost to a timeout or a
-- broken connection) gets the same batch instead of stranding it.
-- Housekeeping first (due scheduled jobs join their kind's list, expired leases are
-- redelivered or failed), then leases up to `max` jobs of the worker's kinds.
-- Returns {now, next due ms or -1, {record JSON, input}..., missing kinds (0/1)}.
local worker, own, max, lease = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ret, gap, rid = ARGV[7], ARGV[8], ARGV[9]
local out = {}

if rid ~= '' then
  local receipt = redis.call('GET', KEYS[21])
  if receipt then
    for _, e in ipairs(cjson.decode(receipt)) do
      local j = load(e[1])
      if holds(j, worker, e[2]) then
        out[#out + 1] = cjson.encode(j)
        out[#out + 1] = redis.call('HGET', K.input, j.id) or ''
      end
    end
    return {now_ms(), -1, out, 0}
  end
end

local now = tick(gap, lease)

local due = redis.call('ZRANGEBYSCORE', K.scheduled, '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  local j = load(id)
  if not j or j.status ~= 'scheduled' then
    redis.call('ZREM', K.scheduled, id)
  elseif READY[j.kind] then
    redis.call('ZREM', K.scheduled, id)
    move(j, 'queued', now)
    j.run_at = nil
    save(j)
    ready(j, false)
    emit(j)
  else
    missing = 1
  end
end

local expired = redis.call('ZRANGEBYSCORE', K.leases, '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  local j = load(id)
  if not j or j.status ~= 'processing' then
    redis.call('ZREM', K.leases, id)
  elseif j.attempts >= j.max or READY[j.kind] then
    redis.call('ZREM', K.leases, id)
    local who = j.worker or '?'
    if j.attempts >= j.max then
      j.error = 'lease expired after ' .. j.attempts .. ' deliveries (worker ' .. who .. ' lost)'
      finish(j, 'failed', now, ret, 'failed')
    else
      j.error = 'lease expired (worker ' .. who .. ' lost); redelivered'
      move(j, 'queued', now)
      ready(j, true)
    end
    save(j)
    emit(j)
  else
    missing = 1
  end
end

local receipt = {}
local deadline = now + lease
-- the highest priority first (the lowest band among the heads of the worker's kinds); between
-- kinds whose heads share that band, round-robin from a random one (fair between kinds)
local lists, heads = {}, {}
local function head(i)
  local h = redis.call('ZRANGE', lists[i], 0, 0, 'WITHSCORES')
  if h[1] then
    return {h[1], math.floor(tonumber(h[2]) / BAND)}
  end
  return nil
end
for i = 1, own do
  lists[#lists + 1] = READY[KINDS[i]]
  heads[#lists] = head(#lists)
end
local rr = 0
if #lists > 1 then
  rr = tonumber(string.sub(tostring(now), -3)) % #lists
end
-- a paused queue leases nothing (housekeeping above still runs: due jobs become queued,
-- expired leases are redelivered into the queue); limits cap the batch in the same script,
-- so they hold across any number of workers and servers
local conf = redis.call('HMGET', K.conf, 'paused', 'concurrency', 'rate', 'period')
if conf[1] == '1' then
  max = 0
end
local climit = tonumber(conf[2])
if climit then
  -- at most `concurrency` of the queue's jobs leased at once
  max = math.min(max, math.max(0, climit - redis.call('ZCARD', K.leases)))
end
local rate, period = tonumber(conf[3]), tonumber(conf[4])
local limited = -1
if rate and period then
  -- at most `rate` starts in any window of `period` ms (a log of recent starts)
  redis.call('ZREMRANGEBYSCORE', K.starts, '-inf', now - period)
  local used = redis.call('ZCARD', K.starts)
  if used >= rate then
    local o = redis.call('ZRANGE', K.starts, 0, 0, 'WITHSCORES')
    if o[2] then
      limited = tonumber(o[2]) + period
    end
  end
  max = math.min(max, math.max(0, rate - used))
end
while #receipt < max do
  local best = nil
  for i = 1, #lists do
    if heads[i] and (not best or heads[i][2] < best) then
      best = heads[i][2]
    end
  end
  if not best then
    break
  end
  local pick
  for k = 0, #lists - 1 do
    local i = ((rr + k) % #lists) + 1
    if heads[i] and heads[i][2] == best then
      pick = i
      break
    end
  end
  rr = pick
  local id = heads[pick][1]
  redis.call('ZREM', lists[pick], id)
  heads[pick] = head(pick)
  do
    local j = load(id)
    if j and j.status == 'queued' then
      move(j, 'processing', now)
      j.attempts = j.attempts + 1
      j.d = (j.d or 0) + 1
      j.started = now
      j.worker = worker
      j.progress = nil
      save(j)
      redis.call('ZADD', K.leases, deadline, id)
      out[#out + 1] = cjson.encode(j)
      out[#out + 1] = redis.call('HGET', K.input, id) or ''
      receipt[#receipt + 1] = {id, j.d}
      if rate and period then
        redis.call('ZADD', K.starts, now, id .. ':' .. j.d)
      end
      emit(j)
    end
  end
end
if rid ~= '' and #receipt > 0 then
  redis.call('SET', KEYS[21], cjson.encode(receipt), 'PX', math.max(lease * 3, 10000))
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
if limited > 0 and (next_due < 0 or limited < next_due) then
  next_due = limited
end
return {now, next_due, out, missing}
