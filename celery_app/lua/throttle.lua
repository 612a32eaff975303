-- Park a task that a limit of its type holds back (claim answered 'throttle'): it stays
-- pending, with throttled_until, and its next message waits in tq:delayed until then — no
-- worker process is held and no attempt is counted. The message that was claimed (delivery
-- ARGV[6]) becomes stale and is acknowledged without running.
-- A parked task is looked at again after at most MAX_PARK_MS (ms), so that a limit raised or
-- removed meanwhile lets it start soon; the re-check is counted and announced only once.
local MAX_PARK_MS = 5000
-- ARGV[5] id, [6] the claimed delivery, [7] new delivery, [8] new message, [9] due (ms).
-- Returns 1 when parked, 0 when the task moved on meanwhile.
local id, claimed, delivery, message, due = ARGV[5], ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
local h = load(id)
if not h or h.state ~= 'pending' or (h.delivery or '') ~= claimed then return 0 end
local first = not h.throttled_until
redis.call('HSET', task_key(id), 'delivery', delivery, 'throttled_until', iso(due))
park(id, math.min(due, NOW_MS + MAX_PARK_MS), delivery, message)
if first then  -- counted and told once per wait, not at every re-check
  redis.call('HINCRBY', P .. 'metrics:throttled', h.type, 1)
  emit('task.throttled', id, h, {throttled_until = iso(due)})
end
return 1
