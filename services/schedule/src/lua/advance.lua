-- KEYS: next, last. ARGV: name, expected next ms, new next ms ('' = none), last JSON ('' = keep).
-- Compare-and-set on `next`: only one scheduler can move a schedule past a tick. Returns 1
-- when advanced, 0 when `next` is no longer the expected tick (advanced, paused, deleted).
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[4]) end
return 1
