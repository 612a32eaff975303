-- An external processor reports on a task (the upload tracker's PATCH). The processor is
-- authoritative: processing -> running, completed, failed; afterwards no worker runs the task
-- (it leaves the delayed set, and its queued message is skipped at claim: it is not pending).
-- ARGV[5] id, [6] status ('' | processing | completed | failed), [7] progress ('' for none),
-- [8] error message ('' for none), [9] result JSON ('' for none), [10] audit entry (lib.lua
-- audit).
-- Returns {'ok', envelope}, {'conflict', state} or {'missing'}.
local id, status, progress, message, result = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local h = load(id)
if not h then return {'missing'} end
if FINAL[h.state] then return {'conflict', h.state} end
local old = h.state
local changes = {}
if progress ~= '' then h.progress = progress; table.insert(changes, 'progress'); table.insert(changes, progress) end
if message ~= '' then table.insert(changes, 'error'); table.insert(changes, message) end
if result ~= '' then table.insert(changes, 'result'); table.insert(changes, result) end

local new = ({processing = 'running', completed = 'completed', failed = 'failed'})[status] or old
audit(ARGV[10], {from = old, to = new})
if new ~= old then
  unpark(id)
  for _, c in ipairs({'state', new, 'next_retry_at', false}) do table.insert(changes, c) end
end
if new == 'running' and old ~= 'running' then
  -- The reporting processor runs it now, not a worker: the reaper leaves it alone.
  for _, c in ipairs({'started_at', NOW_ISO, 'started_ms', int(NOW_MS), 'worker_id', false}) do
    table.insert(changes, c)
  end
end
if new == 'completed' or new == 'failed' then
  table.insert(changes, 'completed_at'); table.insert(changes, NOW_ISO)
end
if new == 'completed' and progress == '' then
  h.progress = '100'; table.insert(changes, 'progress'); table.insert(changes, '100')
end
if new == 'failed' and message == '' and not h.error then
  table.insert(changes, 'error'); table.insert(changes, 'failed')
end
local elapsed = NOW_MS - tonumber(h.started_ms or NOW_MS)
if new == 'completed' and old ~= 'completed' then
  table.insert(changes, 'duration_ms'); table.insert(changes, int(elapsed))
end
update(id, changes)
index_move(id, h, old, new)

local extra = nil
if message ~= '' then extra = {error = message} end
if new == 'running' and old ~= 'running' then emit('task.started', id, h) end
if progress ~= '' and new ~= 'completed' then emit('task.progress', id, h, extra) end
if new == 'completed' and old ~= 'completed' then
  count_processing(elapsed)
  emit('task.completed', id, h)
  count_outcome(h, 'completed')
elseif new == 'failed' and old ~= 'failed' then
  emit('task.failed', id, h, {error = message ~= '' and message or (h.error or 'failed')})
  count_outcome(h, 'failed')
elseif progress == '' and new == old then
  emit('task.progress', id, h, extra)
end
return {'ok', envelope(id)}
