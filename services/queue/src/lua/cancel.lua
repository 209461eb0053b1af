-- ARGV: channel, kinds ([]), job id, retention ms
-- Returns {1} when cancelled, {0} when the job does not exist, {2, status} when its status
-- does not allow it.
local id, ret = ARGV[3], ARGV[4]
local j = load(id)
if not j then
  return {0}
end
if j.status == 'queued' then
  -- lazy: the id stays in its ready list and `take` skips it (a job that is not QUEUED is
  -- never leased), so a cancel costs O(1) however deep the queue is
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
