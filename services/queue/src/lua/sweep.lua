-- ARGV: prefix, then index names (e.g. 'all', 'status:done')
-- Removes ids of expired jobs from the oldest end of each index (ids are ULIDs, so lex order
-- is creation order, close to expiry order). Bounded work per call; ListJobs also drops the
-- expired ids it meets.
local removed = 0
for i = 2, #ARGV do
  local idx = p .. ARGV[i]
  local ids = redis.call('ZRANGEBYLEX', idx, '-', '+', 'LIMIT', 0, 200)
  for _, id in ipairs(ids) do
    if redis.call('EXISTS', jkey(id)) == 0 then
      redis.call('ZREM', idx, id)
      removed = removed + 1
    end
  end
end
return removed
