-- ARGV: channel, kinds (every known kind), worker id, retention ms, then (job id, delivery)...
-- The worker is gone (its stream to the jobs core broke, or it went silent): its leases end
-- now, exactly as if they had expired — queued again at the front of their kind with the
-- delivery counted towards max attempts, or FAILED after the last one (a job that crashes its
-- worker every time still reaches the dead-letter state). Only sooner than the lease.
-- Returns {abandoned, missing kinds (0/1)}; a job whose kind was not declared stays leased.
local worker, ret = ARGV[3], ARGV[4]
local now = now_ms()
local n = 0
for i = 5, #ARGV, 2 do
  local id, d = ARGV[i], ARGV[i + 1]
  local j = load(id)
  if holds(j, worker, d) then
    if j.attempts >= j.max then
      redis.call('ZREM', K.leases, id)
      j.error = 'lease expired after ' .. j.attempts .. ' deliveries (worker ' .. worker .. ' disconnected)'
      finish(j, 'failed', now, ret, 'failed')
      save(j)
      emit(j)
      n = n + 1
    elseif READY[j.kind] then
      redis.call('ZREM', K.leases, id)
      j.error = 'lease expired (worker ' .. worker .. ' disconnected); redelivered'
      move(j, 'queued', now)
      save(j)
      ready(j, true)
      emit(j)
      n = n + 1
    else
      missing = 1
    end
  end
end
return {n, missing}
