-- Release due delayed tasks (scheduled, retry backoff, held back by a limit) into their Celery
-- queues.
-- ARGV[5] most to release. Returns the ids released.
local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW_MS, 'LIMIT', 0, ARGV[5])
local released = {}
for _, id in ipairs(due) do
  local parked = redis.call('HGET', P .. 'delayed:msg', id)
  local h = load(id)
  local cut = parked and string.find(parked, '\n', 1, true)
  local delivery = cut and string.sub(parked, 1, cut - 1)
  if h and h.state == 'pending' and delivery == h.delivery then
    -- held back by a limit (lua/throttle.lua): queued again as it is, still pending
    push(id, h, delivery, string.sub(parked, cut + 1))
    table.insert(released, id)
  elseif parked and h and (h.state == 'scheduled' or h.state == 'retrying') then
    local message = string.sub(parked, cut + 1)
    local old = h.state
    update(id, {'state', 'pending', 'delivery', delivery, 'next_retry_at', false,
                'queued_ms', int(NOW_MS)})
    index_move(id, h, old, 'pending')
    push(id, h, delivery, message)
    emit('task.submitted', id, h, {released_from = old})
    table.insert(released, id)
  else
    unpark(id)
  end
end
return released
