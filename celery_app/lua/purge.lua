-- Delete a final-state task: envelope, index entries and DLQ entry.
-- ARGV[5] id, [6] audit entry (lib.lua audit). Returns {'ok', envelope} (as it was),
-- {'conflict', state} or {'missing'}.
local id = ARGV[5]
local h = load(id)
if not h then return {'missing'} end
if not FINAL[h.state] then return {'conflict', h.state} end
audit(ARGV[6], {state = h.state})
local before = envelope(id)
index_remove(id, h)
unpark(id)
if h.dlq_id then redis.call('XDEL', P .. 'dlq', h.dlq_id) end
if h.duration_ms then
  redis.call('HINCRBY', P .. 'stats', 'duration_ms_sum', 0 - tonumber(h.duration_ms))
end
redis.call('DEL', task_key(id))
return {'ok', before}
