-- Delete a final-state task: envelope, index entries and DLQ entry. A cancelled task's Celery
-- message may still wait in its queue: a tombstone (tq:purged:<id>, ARGV[7] seconds) tells the
-- claim to skip it rather than adopt it as a message published without an envelope.
-- ARGV[5] id, [6] audit entry (lib.lua audit), [7] tombstone TTL (s). Returns {'ok', envelope}
-- (as it was), {'conflict', state} or {'missing'}.
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
if h.state == 'cancelled' then redis.call('SET', P .. 'purged:' .. id, '1', 'EX', ARGV[7]) end
return {'ok', before}
