-- ARGV: channel, kinds (every known kind), worker id, then (job id, delivery)...
-- Gives leased jobs back (graceful shutdown): queued again at the front of their kind; the
-- attempt does not count towards max attempts (the delivery number stays: never reused).
-- Returns {released, missing kinds (0/1)}; a job whose kind was not declared stays leased.
local worker = ARGV[3]
local now = now_ms()
local n = 0
for i = 4, #ARGV, 2 do
  local id, d = ARGV[i], ARGV[i + 1]
  local j = load(id)
  if holds(j, worker, d) then
    if READY[j.kind] then
      redis.call('ZREM', K.leases, id)
      j.attempts = j.attempts - 1
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
