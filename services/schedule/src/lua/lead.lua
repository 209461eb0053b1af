-- KEYS[1]: leader. ARGV: instance id, term ms.
-- One scheduler at a time: the holder renews its term, anyone takes an expired one.
-- Returns {1 when the caller leads now else 0, Redis time in ms}: the time every replica
-- decides due-ness by.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('GET', KEYS[1])
if not cur or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, now}
end
return {0, now}
