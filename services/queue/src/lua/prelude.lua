-- Shared by every pfc queue script (prepended at build time).
--
-- Every key a script touches is declared in KEYS, in the order of `redis_store::keys::Keys`
-- (the same list for every script, so no script builds a key name): Redis Cluster and
-- Dragonfly see every key up front, and all of them carry the queue's hash tag `{queue}`,
-- so they live in one slot. A job is not a key of its own: its record is a field of the
-- queue's `jobs` hash (JSON), its input a field of `input`, its result a field of `output`.
-- KEYS[21] is the call's own key (a take's receipt; a placeholder otherwise). KEYS[22...] are
-- two keys per kind named, in the same order, by the JSON array ARGV[2]: the kind's ready list
-- and its wake list (one list per kind, so a worker is only handed — and woken for — the kinds
-- it declared).
-- ARGV[1] is the events channel (a channel, not a key).
local K = {
  jobs = KEYS[1], input = KEYS[2], output = KEYS[3], queued_idx = KEYS[4], scheduled = KEYS[5],
  leases = KEYS[6], all = KEYS[7], expiring = KEYS[8], idem = KEYS[9], stats = KEYS[10],
  kinds = KEYS[11], clock = KEYS[12], workers = KEYS[13], winfo = KEYS[14],
  scheduled_idx = KEYS[15], done = KEYS[16], failed = KEYS[17], cancelled = KEYS[18],
  conf = KEYS[19], starts = KEYS[20],
}
-- status -> its index (ListJobs). PROCESSING is listed from `leases`.
local INDEX = { queued = K.queued_idx, scheduled = K.scheduled_idx, done = K.done,
  failed = K.failed, cancelled = K.cancelled }
local channel = ARGV[1]
local KINDS = cjson.decode(ARGV[2])
-- kind -> its ready list (only for the kinds this call declared)
local READY, WAKE = {}, {}
for i, kind in ipairs(KINDS) do
  READY[kind] = KEYS[20 + 2 * i]
  WAKE[kind] = KEYS[21 + 2 * i]
end
-- Set when a job's kind had no declared list: the caller refreshes its kinds and calls again.
local missing = 0

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The job record (a Lua table) or nil.
local function load(id)
  local r = redis.call('HGET', K.jobs, id)
  if not r then
    return nil
  end
  return cjson.decode(r)
end

local function save(j)
  redis.call('HSET', K.jobs, j.id, cjson.encode(j))
end

-- One event per transition (JSON): id, status, version, attempts, kind, at, worker, error,
-- and the result of a DONE job when it is small (watchers then need no extra read).
local function emit(j, result)
  local ev = { id = j.id, s = j.status, v = j.v, a = j.attempts, k = j.kind, at = j.updated,
    w = j.worker, e = j.error, p = j.progress, rt = j.rt }
  if result and #result <= 16384 and (not j.rt or j.rt == 'application/json') then
    ev.r = result
  end
  redis.call('PUBLISH', channel, cjson.encode(ev))
end

-- Moves record `j` to status `to` at `now`: status indexes, version bump, timestamp.
local function move(j, to, now)
  if INDEX[j.status] then
    redis.call('ZREM', INDEX[j.status], j.id)
  end
  if INDEX[to] then
    redis.call('ZADD', INDEX[to], 0, j.id)
  end
  j.status = to
  j.updated = now
  j.v = j.v + 1
end

-- Deletes everything of up to `n` jobs whose retention ended by `now`: record, input,
-- result, index entries, idempotency key. Returns how many.
local function sweep(n, now)
  local ids = redis.call('ZRANGEBYSCORE', K.expiring, '-inf', now, 'LIMIT', 0, n)
  for _, id in ipairs(ids) do
    local j = load(id)
    if j and j.idem and redis.call('HGET', K.idem, j.idem) == id then
      redis.call('HDEL', K.idem, j.idem)
    end
    redis.call('HDEL', K.jobs, id)
    redis.call('HDEL', K.input, id)
    redis.call('HDEL', K.output, id)
    redis.call('ZREM', K.all, id)
    redis.call('ZREM', K.done, id)
    redis.call('ZREM', K.failed, id)
    redis.call('ZREM', K.cancelled, id)
    redis.call('ZREM', K.expiring, id)
  end
  return #ids
end

-- A job reached a terminal status: it is kept for the retention `ret` (ms), then swept.
-- Each terminal transition also sweeps up to two expired jobs, so cleanup keeps up with any
-- sustained rate by construction (the housekeeping tick catches up after bursts).
local function finish(j, to, now, ret, counter)
  move(j, to, now)
  j.finished = now
  redis.call('ZADD', K.expiring, now + tonumber(ret), j.id)
  redis.call('HINCRBY', K.stats, counter, 1)
  sweep(2, now)
end

-- The lease clock. Lease deadlines are Redis times, but a lease can only be renewed while
-- scripts run; if none ran for longer than `gap_ms` (Redis paused, restarted, unreachable
-- from everyone), nobody could renew anything, so every deadline moves forward by the gap:
-- an outage never expires a lease by itself. Called by every script that renews or
-- expires leases; returns the current time.
local function tick(gap_ms, lease_ms)
  local now = now_ms()
  local last = tonumber(redis.call('GET', K.clock))
  if last and now - last > tonumber(gap_ms) then
    -- every lease gets the time it lost, and at least one full lease from now: after an
    -- outage every worker has to reconnect before it can heartbeat again
    local gap = now - last
    local floor = now + tonumber(lease_ms)
    local l = redis.call('ZRANGE', K.leases, 0, -1, 'WITHSCORES')
    for i = 1, #l, 2 do
      redis.call('ZADD', K.leases, math.max(tonumber(l[i + 1]) + gap, floor), l[i])
    end
    if #l > 0 then
      redis.call('HINCRBY', K.stats, 'clock_shifts', 1)
    end
  end
  if not last or now > last then
    redis.call('SET', K.clock, now)
  end
  return now
end

-- A ready set's score: the priority band (higher priority = lower band, popped first), then
-- a sequence within it: submits count up from the band's middle, jobs put back in front
-- (redelivered, released) count down from it. Bands are 2^48 wide and priorities -10..10, so
-- every score stays an exact integer in a double (< 2^53).
local BAND = 281474976710656
local HALF = 140737488355328
local function rank(j, front)
  local base = (10 - tonumber(j.pr or 0)) * BAND + HALF
  if front then
    return base - redis.call('HINCRBY', K.stats, 'seq_front', 1)
  end
  return base + redis.call('HINCRBY', K.stats, 'seq', 1)
end

-- Puts a queued job in its kind's ready set (`front`: redelivered or released jobs go first
-- within their priority). False (and `missing` set) when the kind's set was not declared by
-- this call.
local function ready(j, front)
  local list = READY[j.kind]
  if not list then
    missing = 1
    return false
  end
  redis.call('ZADD', list, string.format('%.0f', rank(j, front)), j.id)
  -- wake an idle worker of this kind; past 64 tokens every such worker is already woken
  if redis.call('LLEN', WAKE[j.kind]) < 64 then
    redis.call('LPUSH', WAKE[j.kind], '1')
  end
  return true
end

-- True when `j` is the delivery `d` held by `worker` (the fence for complete, heartbeat and
-- release: owner and delivery number, never reused).
local function holds(j, worker, d)
  return j ~= nil and j.status == 'processing' and j.worker == worker and tonumber(j.d) == tonumber(d)
end
