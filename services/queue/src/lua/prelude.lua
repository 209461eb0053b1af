-- Shared by every pfc queue script (prepended at build time).
-- KEYS[1] is always the queue's list key: it carries the queue's hash tag, so Redis Cluster
-- routes the script to the slot that holds every key below (they all share `{queue}`).
-- ARGV[1] is the key prefix, e.g. `pfc:{default}:`.
local p = ARGV[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function jkey(id)
  return p .. 'job:' .. id
end

-- One event per transition: "id \t status \t version \t attempts \t kind \t at \t worker \t error".
local function emit(id, status, v, attempts, kind, at, worker, err)
  redis.call('PUBLISH', p .. 'events', id .. '\t' .. status .. '\t' .. v .. '\t' .. (attempts or 0)
    .. '\t' .. (kind or '') .. '\t' .. at .. '\t' .. (worker or '') .. '\t' .. (err or ''))
end

-- Statuses with an index of their own (`status:<name>`, for ListJobs). QUEUED is listed
-- from the `queued` list and PROCESSING from the `leases` set, so the hot path (submit, take,
-- complete) touches no extra index for them.
local indexed = { scheduled = true, done = true, failed = true, cancelled = true }

-- Moves job `id` (at version `v`) from status `from` to `to` and stamps it; extra hash fields
-- follow as pairs. Returns the new version.
local function move(id, from, to, now, v, ...)
  if indexed[from] then
    redis.call('ZREM', p .. 'status:' .. from, id)
  end
  if indexed[to] then
    redis.call('ZADD', p .. 'status:' .. to, 0, id)
  end
  v = tonumber(v) + 1
  redis.call('HSET', jkey(id), 'status', to, 'updated', now, 'v', v, ...)
  return v
end

-- A terminal job (and its idempotency key, if any) is kept for the retention time, then expires.
local function retain(id, ret, idem)
  redis.call('PEXPIRE', jkey(id), ret)
  if idem then
    redis.call('PEXPIRE', p .. 'idem:' .. idem, ret)
  end
end
