-- ARGV: channel, kinds ([]), instance id, term ms
-- KEYS[21]: the housekeeping leader key. One `pfc jobs` process at a time runs the periodic
-- housekeeping: the holder renews its term, anyone may take an expired one. Returns 1 when
-- the caller leads now.
local me, term = ARGV[3], ARGV[4]
local cur = redis.call('GET', KEYS[21])
if not cur or cur == me then
  redis.call('SET', KEYS[21], me, 'PX', term)
  return 1
end
return 0
