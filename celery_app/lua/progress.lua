-- A running execution reports how far it got.
-- ARGV[5] id, [6] delivery, [7] percent (0-100), [8] message ('' for none).
-- Returns {'ok'} or {'stale', state}.
local id, delivery, percent, message = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local h = load(id, {'state', 'delivery', 'type', 'priority', 'created_ms', 'attempts',
                    'progress'})
if not h then return {'stale', 'missing'} end
if h.state ~= 'running' or (h.delivery or '') ~= delivery then return {'stale', h.state} end
h.progress = percent
update(id, {'progress', percent, 'progress_message', message ~= '' and message or false})
index_move(id, h, 'running', 'running')
local extra = nil
if message ~= '' then extra = {message = message} end
emit('task.progress', id, h, extra)
return {'ok'}
