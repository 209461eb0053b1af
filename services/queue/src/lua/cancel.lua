-- ARGV: channel, kinds (every known kind), job id, retention ms
-- Returns {1} when cancelled, {0} when the job does not exist, {2, status} when its status
-- does not allow it, {3} when its kind's list was not declared (refresh kinds, call again).
local id, ret = ARGV[3], ARGV[4]
local j = load(id)
if not j then
  return {0}
end
if j.status == 'queued' then
  if not READY[j.kind] then
    return {3}
  end
  redis.call('LREM', READY[j.kind], -1, id)
elseif j.status == 'scheduled' then
  redis.call('ZREM', K.scheduled, id)
else
  return {2, j.status}
end
local now = now_ms()
finish(j, 'cancelled', now, ret, 'cancelled')
save(j)
emit(j)
return {1}
