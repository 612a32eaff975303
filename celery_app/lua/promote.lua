-- Release due delayed tasks (scheduled, retry backoff) into their Celery queues.
-- ARGV[5] most to release. Returns the ids released.
local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW_MS, 'LIMIT', 0, ARGV[5])
local released = {}
for _, id in ipairs(due) do
  local parked = redis.call('HGET', P .. 'delayed:msg', id)
  local h = load(id)
  if parked and h and (h.state == 'scheduled' or h.state == 'retrying') then
    local cut = string.find(parked, '\n', 1, true)
    local delivery, message = string.sub(parked, 1, cut - 1), string.sub(parked, cut + 1)
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
