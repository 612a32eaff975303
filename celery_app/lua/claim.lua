-- A worker takes a task before running its handler: pending -> running, only for the live
-- message (its delivery token must match), so a cancelled, finished, already claimed or stale
-- redelivered message is skipped.
-- A message that is live but may not start now — its worker or its queue is paused, or an
-- earlier execution still holds the task's lease — is skipped with 'requeue': the caller puts
-- it back on its queue and the task stays pending, no attempt counted.
-- Taking the task also takes its lease (tq:lease:<id> = delivery, expiring after ARGV[8] ms),
-- which the executing pool child renews (celery_app/lease.py).
-- ARGV[5] id, [6] delivery ('' for a message published without one), [7] worker hostname,
-- [8] lease TTL (ms). Returns {'ok', attempts, max_retries, timeout, priority, type} (what the
-- execution needs; the payload is the message's) or
-- {'skip', state or 'missing', reason[, 'requeue']}.
local id, delivery, worker, lease_ms = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local h = load(id)
if not h then return {'skip', 'missing', 'no envelope'} end
if h.state ~= 'pending' then return {'skip', h.state, 'state is ' .. h.state} end
if (h.delivery or '') ~= delivery then return {'skip', h.state, 'stale delivery'} end
if worker ~= '' and redis.call('HEXISTS', P .. 'paused', worker) == 1 then
  return {'skip', h.state, 'worker paused', 'requeue'}
end
if redis.call('HEXISTS', P .. 'queues:paused', h.priority) == 1 then
  return {'skip', h.state, 'queue ' .. h.priority .. ' paused', 'requeue'}
end
local lease = P .. 'lease:' .. id
local holder = redis.call('GET', lease)
if holder and holder ~= delivery then
  return {'skip', h.state, 'an earlier execution still runs', 'requeue'}
end

h.attempts = tostring(tonumber(h.attempts or '0') + 1)
update(id, {'state', 'running', 'attempts', h.attempts, 'started_at', NOW_ISO,
            'started_ms', int(NOW_MS), 'worker_id', worker, 'next_retry_at', false}, h)
index_move(id, h, 'pending', 'running')
observe_queue_wait(h, math.max(0, NOW_MS - tonumber(h.queued_ms or h.created_ms)))
redis.call('SET', lease, delivery, 'PX', lease_ms)
emit('task.started', id, h, {worker_id = worker})
return {'ok', h.attempts, h.max_retries, h.timeout, h.priority, h.type}
