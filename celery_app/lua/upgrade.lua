-- Carry what an earlier key layout kept into the current one; run by every worker as it starts
-- (celery_app/worker.py), a few EXISTS once there is nothing left to carry.
-- Worker pauses (tq:paused), queue pauses (tq:queues:paused) and limits (tq:limits) became
-- fields of tq:gates (celery_app/keys.py): each old field is copied unless tq:gates already has
-- one (a value written under the current layout wins), then the old hash goes.
-- Returns the number of fields copied.
local moved = 0
for _, pair in ipairs({{'paused', 'worker:'}, {'queues:paused', 'queue:'}, {'limits', 'limit:'}}) do
  local old = P .. pair[1]
  if redis.call('EXISTS', old) == 1 then
    local fields = redis.call('HGETALL', old)
    for i = 1, #fields, 2 do
      moved = moved + redis.call('HSETNX', P .. 'gates', pair[2] .. fields[i], fields[i + 1])
    end
    redis.call('DEL', old)
  end
end
return moved
