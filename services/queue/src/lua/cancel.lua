-- ARGV: channel, job id, retention ms
-- Returns {1} when cancelled, {0} when the job does not exist, {2, status} when its status
-- does not allow it.
local id, ret = ARGV[2], ARGV[3]
local j = load(id)
if not j then
  return {0}
end
if j.status == 'queued' then
  redis.call('LREM', K.queued, -1, id)
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
