-- A worker takes a task before running its handler: pending -> running, only for the live
-- message (its delivery token must match), so a cancelled, finished, already claimed or stale
-- redelivered message is skipped.
-- ARGV[5] id, [6] delivery ('' for a message published without one), [7] worker hostname.
-- Returns {'ok', attempts, max_retries, timeout, priority, type} (what the execution needs;
-- the payload is the message's) or {'skip', state or 'missing', reason}.
local id, delivery, worker = ARGV[5], ARGV[6], ARGV[7]
local h = load(id)
if not h then return {'skip', 'missing', 'no envelope'} end
if h.state ~= 'pending' then return {'skip', h.state, 'state is ' .. h.state} end
if (h.delivery or '') ~= delivery then return {'skip', h.state, 'stale delivery'} end

h.attempts = tostring(tonumber(h.attempts or '0') + 1)
update(id, {'state', 'running', 'attempts', h.attempts, 'started_at', NOW_ISO,
            'started_ms', int(NOW_MS), 'worker_id', worker, 'next_retry_at', false}, h)
index_move(id, h, 'pending', 'running')
observe_queue_wait(h, math.max(0, NOW_MS - tonumber(h.queued_ms or h.created_ms)))
emit('task.started', id, h, {worker_id = worker})
return {'ok', h.attempts, h.max_retries, h.timeout, h.priority, h.type}
