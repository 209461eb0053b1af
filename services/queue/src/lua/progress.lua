-- ARGV: channel, kinds ([]), job id, worker id, delivery, progress (0-100)
-- Records a running job's progress, fenced like complete. Returns 1 when recorded, 0 when
-- the worker no longer holds that delivery.
local id, worker, d, progress = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local j = load(id)
if not holds(j, worker, d) then
  return 0
end
j.progress = progress
j.updated = now_ms()
j.v = j.v + 1
save(j)
emit(j)
return 1
