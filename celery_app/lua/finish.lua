-- Record how one execution ended. Only the execution that holds the live delivery may record
-- an outcome; any execution that ends releases the lease it holds.
-- ARGV[5] id, [6] delivery, [7] outcome: completed | retrying | dead_letter,
-- [8] result JSON (completed) or error text, [9] backoff before the next execution (ms, on
-- Redis's clock from now), [10] next delivery, [11] next message (retrying), [12] DLQ reason
-- (dead_letter).
-- Returns {'ok', state, elapsed ms} or {'stale', state}.
local id, delivery, outcome, detail = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
-- The execution has ended either way (even when a PATCH made it stale): its lease goes. A live
-- execution's lease is released by the outcome's own HSET (lease_until '0'); a stale one's only
-- while it still names this execution. (As a function this script is refused whole while
-- Redis refuses writes; run with EVAL on Redis 6.2, pcall keeps the answer 'stale' at
-- maxmemory, and the lease it could not release lapses by itself.)
local function release_stale(h)
  if h and h.lease == delivery and lease_holder(h) then
    redis.pcall('HSET', task_key(id), 'lease_until', '0')
  end
end
-- What an outcome reads, writes through index_move/emit (and the webhook of a final state)
-- and may delete (update).
local h = load(id, {'state', 'delivery', 'type', 'priority', 'created_ms', 'attempts',
                    'progress', 'started_ms', 'callback_url', 'error', 'lease', 'lease_until'})
if not h then return {'stale', 'missing'} end
if h.state ~= 'running' or (h.delivery or '') ~= delivery then
  release_stale(h)
  return {'stale', h.state}
end

local elapsed = NOW_MS - tonumber(h.started_ms or NOW_MS)
if outcome == 'completed' then
  h.progress = '100'
  update(id, {'state', 'completed', 'result', detail, 'progress', '100',
              'completed_at', NOW_ISO, 'duration_ms', int(elapsed), 'error', false,
              'lease_until', '0'}, h)
  index_move(id, h, 'running', 'completed')
  emit('task.completed', id, h, {duration_ms = elapsed})
  return {'ok', 'completed', elapsed}
end

emit('task.failed', id, h, {error = detail, duration_ms = elapsed})
if outcome == 'retrying' then
  local due = NOW_MS + tonumber(ARGV[9])
  update(id, {'state', 'retrying', 'error', detail, 'next_retry_at', iso(due),
              'lease_until', '0'}, h)
  index_move(id, h, 'running', 'retrying')
  park(id, int(due), ARGV[10], ARGV[11])
  emit('task.retrying', id, h, {error = detail, next_retry_at = iso(due)})
else
  local dlq_id = redis.call('XADD', P .. 'dlq', '*', 'task_id', id, 'reason', ARGV[12],
                            'added_at', NOW_ISO)
  update(id, {'state', 'dead_letter', 'error', detail, 'completed_at', NOW_ISO, 'dlq_id', dlq_id,
              'lease_until', '0'}, h)
  index_move(id, h, 'running', 'dead_letter')
  emit('task.dead_letter', id, h, {error = detail, reason = ARGV[12]})
end
return {'ok', h.state, elapsed}
