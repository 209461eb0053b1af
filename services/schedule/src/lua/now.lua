-- KEYS[1]: leader (declared only to route the call: on a cluster, the time is the schedules
-- slot's master's, the same clock `lead` reads). Returns Redis time in ms.
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
