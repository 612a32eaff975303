-- A worker takes a task before running its handler: pending -> running, only for the live
-- message (its delivery token must match), so a cancelled, finished, already claimed or stale
-- redelivered message is skipped.
-- A message that is live but may not start now — its worker or its queue is paused, or an
-- earlier execution still holds the task's lease — is skipped with 'requeue': the caller puts
-- it back on its queue and the task stays pending, no attempt counted.
-- Taking the task also takes its lease (the envelope's lease = delivery, lease_until = now +
-- ARGV[8] ms, in the transition's own HSET), which the executing pool child renews
-- (celery_app/lease.py).
-- ARGV[5] id, [6] delivery ('' for a message published without one), [7] worker hostname,
-- [8] lease TTL (ms). Returns {'ok', attempts, max_retries, timeout, priority, type} (what the
-- execution needs; the payload is the message's) or
-- {'skip', state or 'missing', reason[, 'requeue']}, or {'skip', 'pending', 'throttled',
-- 'throttle', ms when it may be tried again} when a limit of its type holds it back.
-- A task held back by a concurrency cap is tried again after this long (ms).
local CONCURRENCY_RECHECK_MS = 500
local id, delivery, worker, lease_ms = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
-- What the claim reads, writes through index_move/emit, may delete (update) and returns.
local h = load(id, {'state', 'delivery', 'type', 'priority', 'created_ms', 'attempts',
                    'max_retries', 'timeout', 'progress', 'queued_ms', 'next_retry_at',
                    'throttled_until', 'lease', 'lease_until'})
if not h then  -- a deleted task's message, or one published without an envelope (adopted)
  if redis.call('EXISTS', P .. 'purged:' .. id) == 1 then return {'skip', 'purged', 'deleted'} end
  return {'skip', 'missing', 'no envelope'}
end
if h.state ~= 'pending' then return {'skip', h.state, 'state is ' .. h.state} end
if (h.delivery or '') ~= delivery then return {'skip', h.state, 'stale delivery'} end
-- Everything that may hold the task back, in one read (tq:gates, celery_app/keys.py).
local gates = redis.call('HMGET', P .. 'gates', 'worker:' .. worker, 'queue:' .. h.priority,
                         'limit:' .. h.type)
if worker ~= '' and gates[1] then return {'skip', h.state, 'worker paused', 'requeue'} end
if gates[2] then return {'skip', h.state, 'queue ' .. h.priority .. ' paused', 'requeue'} end
local holder = lease_holder(h)
if holder and holder ~= delivery then
  return {'skip', h.state, 'an earlier execution still runs', 'requeue'}
end

-- Limits of the task's type (celery_app/limits.py): a concurrency cap counts executions whose
-- lease still names them (a lost worker's lease expires, and its slot with it); a rate allows
-- at most rate_n starts in any window of rate_ms (a log of starts, trimmed to the window).
-- Over a limit: skip with 'throttle' and the time it may be tried again.
local limit = gates[3]
if limit then
  limit = cjson.decode(limit)  -- tonumber: a JSON null decodes to cjson.null, not nil
  limit.concurrency, limit.rate_n = tonumber(limit.concurrency), tonumber(limit.rate_n)
  local wait_ms = 0
  if limit.concurrency then
    local running_key = P .. 'limit:running:' .. h.type
    local slots = redis.call('HGETALL', running_key)
    local held = 0
    for i = 1, #slots, 2 do
      local slot = redis.call('HMGET', task_key(slots[i]), 'lease', 'lease_until')
      if slot[1] == slots[i + 1] and tonumber(slot[2] or '0') > NOW_MS then held = held + 1
      else redis.call('HDEL', running_key, slots[i]) end
    end
    if held >= limit.concurrency then wait_ms = CONCURRENCY_RECHECK_MS end
  end
  if wait_ms == 0 and limit.rate_n then
    local rate_key = P .. 'limit:rate:' .. h.type
    redis.call('ZREMRANGEBYSCORE', rate_key, '-inf', NOW_MS - limit.rate_ms)
    local started = redis.call('ZCARD', rate_key)
    if started >= limit.rate_n then  -- free again when the oldest start that fills it leaves
      local oldest = redis.call('ZRANGE', rate_key, started - limit.rate_n,
                                started - limit.rate_n, 'WITHSCORES')
      wait_ms = tonumber(oldest[2]) + limit.rate_ms - NOW_MS
    end
  end
  if wait_ms > 0 then return {'skip', h.state, 'throttled', 'throttle', int(NOW_MS + wait_ms)} end
end

h.attempts = tostring(tonumber(h.attempts or '0') + 1)
if limit and limit.concurrency then redis.call('HSET', P .. 'limit:running:' .. h.type, id, delivery) end
if limit and limit.rate_n then
  redis.call('ZADD', P .. 'limit:rate:' .. h.type, int(NOW_MS), id .. ':' .. h.attempts)
  redis.call('PEXPIRE', P .. 'limit:rate:' .. h.type, int(limit.rate_ms))
end
update(id, {'state', 'running', 'attempts', h.attempts, 'started_at', NOW_ISO,
            'started_ms', int(NOW_MS), 'worker_id', worker, 'next_retry_at', false,
            'throttled_until', false, 'lease', delivery, 'lease_until', int(NOW_MS + lease_ms)},
       h)
index_move(id, h, 'pending', 'running')
local waited = math.max(0, NOW_MS - tonumber(h.queued_ms or h.created_ms))
emit('task.started', id, h, {worker_id = worker, queue_wait_ms = waited})
return {'ok', h.attempts, h.max_retries, h.timeout, h.priority, h.type}
