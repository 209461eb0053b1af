-- KEYS: defs, next. ARGV: name, expected definition, new definition, next mode
-- ('keep' | 'clear' | 'set'), next tick ms.
-- Compare-and-set on the definition. Returns 1 replaced, 0 changed meanwhile, -1 gone.
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return -1 end
if cur ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] == 'clear' then
  redis.call('HDEL', KEYS[2], ARGV[1])
elseif ARGV[4] == 'set' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[5])
end
return 1
