-- Fold the events appended since the last fold into the metrics counters, in one batch:
-- per execution (a worker's transition) one count by type, ending and duration bucket, the
-- duration sum, the queue wait by type and priority, and the processing-time sum that
-- statistics average. A field many executions share gets one HINCRBY per batch, not per task.
-- ARGV[5] most events to fold. Returns how many events were read.
--
-- Events used: task.started with queue_wait_ms; task.completed with duration_ms (a worker's;
-- PATCH's carry none and are counted by patch.lua); task.failed with duration_ms, whose ending
-- is the next event of the same call (task.retrying or task.dead_letter, appended right after
-- it by finish.lua). The cursor tq:metrics:cursor is the last event folded; folds run one at a
-- time (scripts are atomic), so each event is counted once. Events trimmed (EVENTS_MAXLEN)
-- before any fold are not counted: the maintenance tick folds once a second.
-- The kinds whose data a fold reads (others, such as task.submitted and task.progress, are
-- passed over undecoded).
local FOLDED = {['task.started'] = true, ['task.completed'] = true, ['task.failed'] = true,
                ['task.retrying'] = true, ['task.dead_letter'] = true}
local cursor = redis.call('GET', P .. 'metrics:cursor') or '0-0'
local entries = redis.call('XRANGE', P .. 'events', '(' .. cursor, '+', 'COUNT', ARGV[5])
if #entries == 0 then return 0 end

local counts = {executions = {}, queue_wait = {}}
local sums = {duration = {}, queue_wait = {}}
local processing_ms = 0
local function add(into, field, n) into[field] = (into[field] or 0) + n end

local function execution(d, ending, ms)
  local seconds = ms / 1000
  add(counts.executions, d.type .. '\t' .. ending .. '\t' .. bucket_of(BUCKETS, seconds), 1)
  add(sums.duration, d.type .. '\tsum', seconds)
end

local last = nil
local failed = nil  -- a task.failed waiting for the event that says how the execution ended
for n, entry in ipairs(entries) do
  local fields = entry[2]
  local kind, data = nil, nil
  for i = 1, #fields, 2 do
    if fields[i] == 'type' then kind = fields[i + 1] elseif fields[i] == 'data' then data = fields[i + 1] end
  end
  local d = {}
  if data and FOLDED[kind] then
    -- An entry this service did not write in its shape (bad JSON, no string type, priority
    -- or number where one is needed) counts as nothing, instead of stopping every fold.
    local ok, decoded = pcall(cjson.decode, data)
    if ok and type(decoded) == 'table' and type(decoded.type) == 'string'
        and (decoded.priority == nil or type(decoded.priority) == 'string') then
      d = decoded
      d.queue_wait_ms, d.duration_ms = tonumber(d.queue_wait_ms), tonumber(d.duration_ms)
    end
  end
  if failed and (kind == 'task.retrying' or kind == 'task.dead_letter')
      and d.task_id == failed.task_id then
    execution(failed, kind == 'task.retrying' and 'retrying' or 'dead_letter', failed.duration_ms)
    failed = nil
  end
  if kind == 'task.started' and d.queue_wait_ms and d.priority then
    local seconds = d.queue_wait_ms / 1000
    local label = d.type .. '\t' .. d.priority
    add(counts.queue_wait, label .. '\t' .. bucket_of(WAIT_BUCKETS, seconds), 1)
    add(sums.queue_wait, label .. '\tsum', seconds)
  elseif kind == 'task.completed' and d.duration_ms then
    execution(d, 'completed', d.duration_ms)
    processing_ms = processing_ms + d.duration_ms
  elseif kind == 'task.failed' and d.duration_ms then
    if n == #entries and #entries == tonumber(ARGV[5]) then break end  -- its ending is next
    failed = d
  end
  last = entry[1]
end
if not last then return 0 end

for name, fields in pairs(counts) do
  for field, n in pairs(fields) do redis.call('HINCRBY', P .. 'metrics:' .. name, field, n) end
end
for name, fields in pairs(sums) do
  for field, x in pairs(fields) do
    redis.call('HINCRBYFLOAT', P .. 'metrics:' .. name, field, string.format('%.6f', x))
  end
end
if processing_ms > 0 then
  redis.call('HINCRBY', P .. 'stats', 'duration_ms_sum', int(processing_ms))
end
redis.call('SET', P .. 'metrics:cursor', last)
return #entries
