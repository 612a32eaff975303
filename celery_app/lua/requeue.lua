-- Queue an existing task again under the same id with a new delivery (retry endpoint, DLQ retry).
-- ARGV[5] id, [6] allowed states (space separated), [7] delivery, [8] message, [9] reset ('1':
-- attempts, progress, error and results cleared), [10] audit entry (lib.lua audit). Returns
-- {'ok', envelope}, {'conflict', state}, {'busy', state} (an execution still holds its lease) or
-- {'missing'}.
local id, allowed, delivery, message, reset = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local h = load(id)
if not h then return {'missing'} end
local old = h.state
if not string.find(' ' .. allowed .. ' ', ' ' .. old .. ' ', 1, true) then
  return {'conflict', old}
end
-- One execution at a time: a task whose execution still runs (a PATCH made it final under a
-- running handler) is not queued again until that execution ends or its lease expires.
if lease_holder(h) then return {'busy', old} end
audit(ARGV[10], {from = old})
local changes = {'state', 'pending', 'delivery', delivery, 'next_retry_at', false,
                 'queued_ms', int(NOW_MS)}
if reset == '1' then
  h.attempts, h.progress = '0', '0'
  for _, c in ipairs({'attempts', '0', 'progress', '0', 'error', false, 'result', false,
                      'started_at', false, 'completed_at', false, 'worker_id', false,
                      'dlq_id', false}) do
    table.insert(changes, c)
  end
end
if h.dlq_id then redis.call('XDEL', P .. 'dlq', h.dlq_id) end
if h.duration_ms then  -- it is no longer a completed task
  redis.call('HINCRBY', P .. 'stats', 'duration_ms_sum', 0 - tonumber(h.duration_ms))
  table.insert(changes, 'duration_ms'); table.insert(changes, false)
end
update(id, changes)
index_move(id, h, old, 'pending')
push(id, h, delivery, message)
emit('task.submitted', id, h, {requeued_from = old})
return {'ok', envelope(id)}
