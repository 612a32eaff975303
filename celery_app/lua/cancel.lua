-- Cancel a task that has not started: pending, scheduled or retrying -> cancelled. Its queued
-- message stays in Celery's list and is skipped at claim; a parked one is dropped here.
-- ARGV[5] id, [6] audit entry (lib.lua audit). Returns {'ok', envelope}, {'conflict', state}
-- or {'missing'}.
local id = ARGV[5]
local h = load(id)
if not h then return {'missing'} end
local old = h.state
if old ~= 'pending' and old ~= 'scheduled' and old ~= 'retrying' then return {'conflict', old} end
audit(ARGV[6], {from = old})
unpark(id)
update(id, {'state', 'cancelled', 'next_retry_at', false})
index_move(id, h, old, 'cancelled')
emit('task.cancelled', id, h)
count_outcome(h, 'cancelled')
return {'ok', envelope(id)}
