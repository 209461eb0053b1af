-- ARGV: channel, kinds (every known kind of the queue), then field, value pairs ('' deletes)
-- Sets the queue's settings (`conf`: paused, limits) and wakes a waiting worker of every kind,
-- so a resumed queue (or a raised limit) is served at once. Returns the settings, flat.
for i = 3, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', K.conf, ARGV[i])
  else
    redis.call('HSET', K.conf, ARGV[i], ARGV[i + 1])
  end
end
for _, kind in ipairs(KINDS) do
  if redis.call('LLEN', WAKE[kind]) < 64 then
    redis.call('LPUSH', WAKE[kind], '1')
  end
end
return redis.call('HGETALL', K.conf)
