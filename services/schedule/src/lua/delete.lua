-- KEYS: defs, next, last. ARGV: name. Returns 1 when a schedule was deleted.
local n = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return n
