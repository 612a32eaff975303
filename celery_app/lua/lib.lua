-- Shared by every store script: the prelude of each EVAL script and of the function library
-- (celery_app/scripts.py), so its top level only defines (a function library's top level may not
-- call Redis or reach the math and string libraries). Every call starts with begin(ARGV).
-- ARGV[1] key prefix, ARGV[2] and ARGV[3] empty (reserved), ARGV[4] events stream MAXLEN;
-- a script's own arguments start at ARGV[5]. Key names mirror celery_app/keys.py.
--
-- One clock: "now" is Redis's TIME, read once per call, never a caller's clock. Every due
-- time, retention cutoff and expiry is compared on it, so a host whose clock is off changes
-- nothing, and every timestamp and index score one call writes is the same instant. (Redis 7
-- replicates a script's effects, not the script, so TIME before writes is allowed.)
local P, EVENTS_MAXLEN, NOW_MS, NOW_ISO

-- Milliseconds since the epoch as ISO-8601 UTC with milliseconds and a Z (model.iso's form).
-- Civil date from a day count: H. Hinnant's days_from_civil inverse (proleptic Gregorian). The
-- text up to the last second formatted, and that day's date, are kept (in the function library,
-- between calls too): most calls only append the milliseconds.
local iso_day, iso_date, iso_second, iso_prefix
local function civil_date(day_count)
  local floor = math.floor
  local z = day_count + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local day = doy - floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02d', year, month, day)
end

local function iso(ms)
  local floor = math.floor
  local seconds = floor(ms / 1000)
  if seconds ~= iso_second then
    local day_count = floor(seconds / 86400)
    if day_count ~= iso_day then iso_date, iso_day = civil_date(day_count), day_count end
    local of_day = seconds % 86400
    iso_prefix = string.format('%sT%02d:%02d:%02d.', iso_date, floor(of_day / 3600),
                               floor(of_day % 3600 / 60), of_day % 60)
    iso_second = seconds
  end
  local milli = ms % 1000
  if milli >= 100 then return iso_prefix .. milli .. 'Z' end
  if milli >= 10 then return iso_prefix .. '0' .. milli .. 'Z' end
  return iso_prefix .. '00' .. milli .. 'Z'
end

-- The call's common arguments and its one instant (see the header).
local function begin(ARGV)
  P, EVENTS_MAXLEN = ARGV[1], ARGV[4]
  local clock = redis.call('TIME')
  NOW_MS = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  NOW_ISO = iso(NOW_MS)
end

local STATUS = {pending = 'pending', scheduled = 'pending', retrying = 'pending',
                running = 'processing', completed = 'completed', failed = 'failed',
                dead_letter = 'failed', cancelled = 'cancelled'}
local PRIORITY = {low = 0, normal = 1, high = 2, critical = 3}
local FINAL = {completed = true, failed = true, dead_letter = true, cancelled = true}
-- Fields every transition needs to read (state first: load() tells a missing task by it).
local CORE = {'state', 'type', 'priority', 'created_ms', 'delivery', 'attempts',
              'max_retries', 'progress', 'started_ms', 'dlq_id', 'error', 'worker_id',
              'duration_ms', 'timeout', 'next_retry_at', 'queued_ms', 'callback_url',
              'throttled_until', 'lease', 'lease_until'}

local function int(n) return string.format('%.0f', n) end
local function task_key(id) return P .. 'task:' .. id end
local function idx(sort, filter) return P .. 'idx:' .. sort .. ':' .. filter end

-- The task's envelope fields `fields` (default CORE; state first), or nil when there is no
-- task. A script on the worker's path reads only what it uses (its own list).
local function load(id, fields)
  fields = fields or CORE
  local values = redis.call('HMGET', task_key(id), unpack(fields))
  if not values[1] then return nil end
  local h = {}
  for i, name in ipairs(fields) do h[name] = values[i] or nil end
  return h
end

-- An execution's lease (celery_app/lease.py) is two envelope fields: lease, the delivery of the
-- execution holding it, and lease_until, when it lapses (ms, Redis's clock; '0' once released).
-- Returns the holder's delivery while the lease is held, else nil.
local function lease_holder(h)
  if h.lease and tonumber(h.lease_until or '0') > NOW_MS then return h.lease end
  return nil
end

-- Indexes (celery_app/keys.py has the table). Static ones are written at submit and removed at
-- purge: created and priority order, overall and per type. Two compound ones move with every
-- transition, one ZADD each:
--   tq:idx:state                 score = rank(state) * 2^46 + priority * 1e13 + created_ms
--   tq:idx:updated:type:<type>   score = rank(state) * 2^42 + updated_ms
-- A state (and, in tq:idx:state, a state and priority) is a contiguous score range, so a
-- filter is a range and a count is a ZCOUNT; every score stays below 2^53 (exact in a double).
local RANK = {pending = 0, scheduled = 1, retrying = 2, running = 3, completed = 4, failed = 5,
              dead_letter = 6, cancelled = 7}
local STATE_UNIT = 70368744177664   -- 2^46
local UPDATED_UNIT = 4398046511104  -- 2^42
local PRIORITY_UNIT = 1e13

local function created_score(h) return tonumber(h.created_ms) end
local function priority_score(h) return PRIORITY[h.priority] * PRIORITY_UNIT + tonumber(h.created_ms) end
local function state_score(h) return RANK[h.state] * STATE_UNIT + priority_score(h) end
local function updated_score(h) return RANK[h.state] * UPDATED_UNIT + NOW_MS end
local function state_idx() return P .. 'idx:state' end
local function updated_idx(task_type) return idx('updated', 'type:' .. task_type) end

-- Index a new task (its state set in h).
local function index_add(id, h)
  redis.call('ZADD', idx('created', 'all'), int(created_score(h)), id)
  redis.call('ZADD', idx('priority', 'all'), int(priority_score(h)), id)
  redis.call('ZADD', idx('created', 'type:' .. h.type), int(created_score(h)), id)
  redis.call('ZADD', idx('priority', 'type:' .. h.type), int(priority_score(h)), id)
  redis.call('ZADD', state_idx(), int(state_score(h)), id)
  redis.call('ZADD', updated_idx(h.type), int(updated_score(h)), id)
  redis.call('SADD', P .. 'types', h.type)
end

local function index_remove(id, h)
  redis.call('ZREM', idx('created', 'all'), id)
  redis.call('ZREM', idx('priority', 'all'), id)
  redis.call('ZREM', idx('created', 'type:' .. h.type), id)
  redis.call('ZREM', idx('priority', 'type:' .. h.type), id)
  redis.call('ZREM', state_idx(), id)
  redis.call('ZREM', updated_idx(h.type), id)
end

-- A transition: the task's state (its range in both compound indexes) and its updated time.
local function index_move(id, h, old, new)
  h.state = new
  if old ~= new then redis.call('ZADD', state_idx(), int(state_score(h)), id) end
  redis.call('ZADD', updated_idx(h.type), int(updated_score(h)), id)
end

-- Queue the completion webhook of a task that just reached a final state (celery_app/webhooks.py
-- delivers it): the job keeps a snapshot of the envelope, so every retry sends the same body.
-- The delivery id is the final event's id plus the task id: unique, and stable across retries.
local function queue_callback(id, h, event_id)
  local delivery = event_id .. ':' .. id
  local job = P .. 'webhook:' .. delivery
  redis.call('HSET', task_key(id), 'cb_delivery', delivery, 'cb_state', 'pending',
             'cb_attempts', '0')
  redis.call('HDEL', task_key(id), 'cb_status', 'cb_error')
  redis.call('HSET', job, 'task_id', id, 'event', 'task.' .. h.state, 'url', h.callback_url,
             'attempts', '0', 'snapshot', cjson.encode(redis.call('HGETALL', task_key(id))))
  redis.call('ZADD', P .. 'webhooks', int(NOW_MS), delivery)
end

-- Append one event; data carries the task's scalar view plus `extra` fields. The event that
-- announces a final state also queues the task's webhook, in the same script: no final state
-- without its delivery.
local function emit(event_type, id, h, extra)
  local data = {task_id = id, type = h.type, priority = h.priority, state = h.state,
                status = STATUS[h.state], progress = tonumber(h.progress or '0'),
                attempts = tonumber(h.attempts or '0')}
  if extra then for k, v in pairs(extra) do data[k] = v end end
  local event_id = redis.call('XADD', P .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN, '*',
                              'type', event_type, 'data', cjson.encode(data))
  if h.callback_url and FINAL[h.state] and event_type == 'task.' .. h.state then
    queue_callback(id, h, event_id)
  end
  return event_id
end

-- Change fields of the envelope (pairs name, value; value false deletes) and stamp updated_at.
-- With `h` (the loaded task), a field it shows absent is not deleted: no HDEL for nothing.
local function update(id, changes, h)
  local set = {'updated_at', NOW_ISO}
  local del = {}
  for i = 1, #changes, 2 do
    local name, value = changes[i], changes[i + 1]
    if value == false then
      if not h or h[name] ~= nil then del[#del + 1] = name end
    else set[#set + 1] = name; set[#set + 1] = value end
  end
  redis.call('HSET', task_key(id), unpack(set))
  if #del > 0 then redis.call('HDEL', task_key(id), unpack(del)) end
end

-- Put the Celery message of a task on its queue (the queue is the priority's name). The caller
-- stamps queued_ms (when the task started to wait; its queue wait ends at claim) in its update.
local function push(id, h, delivery, message)
  redis.call('LPUSH', h.priority, message)
  redis.call('ZREM', P .. 'delayed', id)
  redis.call('HDEL', P .. 'delayed:msg', id)
  return delivery
end

-- Park the next message of a task until `due_ms`.
local function park(id, due_ms, delivery, message)
  redis.call('ZADD', P .. 'delayed', due_ms, id)
  redis.call('HSET', P .. 'delayed:msg', id, delivery .. '\n' .. message)
end

local function unpark(id)
  redis.call('ZREM', P .. 'delayed', id)
  redis.call('HDEL', P .. 'delayed:msg', id)
end

local function envelope(id) return redis.call('HGETALL', task_key(id)) end

-- Final states are kept for TASK_RETENTION_SECONDS: the retention sweep reads when each ended
-- from its updated index (a final task's last transition), so nothing else is written.

-- Processing time of completed tasks, for statistics; purging a task takes its share back.
-- The envelope's own duration_ms is written by the caller's update (one HSET). The number of
-- completed tasks is the completed index's size, so only the sum is kept. A worker's completions
-- are added by the metrics fold (their task.completed event carries duration_ms); PATCH adds
-- its own here.
local function count_processing(elapsed_ms)
  redis.call('HINCRBY', P .. 'stats', 'duration_ms_sum', int(elapsed_ms))
end

-- Cluster-wide metrics (read at scrape time by app/metrics.py). Upper bounds of the duration
-- histogram's buckets in seconds; celery_app/metrics.py holds the same list.
local BUCKETS = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

local function count_submitted(h)
  redis.call('HINCRBY', P .. 'metrics:submitted', h.type .. '\t' .. h.priority, 1)
end

local function count_outcome(h, status)
  redis.call('HINCRBY', P .. 'metrics:completed', h.type .. '\t' .. status, 1)
end

-- Executions (their duration, ending and queue wait) are not counted here but folded from the
-- event stream in batches (lua/fold_metrics.lua): the task.started, task.completed,
-- task.failed events a worker's transition appends carry what the histograms need.
local WAIT_BUCKETS = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600}

local function bucket_of(bounds, seconds)
  for i, bound in ipairs(bounds) do
    if seconds <= bound then return i end
  end
  return #bounds + 1
end

-- The audit entry of the change a script makes (celery_app/audit.py): `raw` is '' (not audited)
-- or a JSON array [actor, action, target, detail JSON, maxlen]; `extra` adds what only the
-- script knows to the detail. Call it on the path that makes the change, and only there: first,
-- right after the checks, so a refused XADD aborts the script before anything changed (and once
-- a script has written, Redis lets its later writes through even at maxmemory).
local function audit(raw, extra)
  if raw == nil or raw == '' then return end
  local a = cjson.decode(raw)
  local detail = a[4]
  if extra then
    local merged = cjson.decode(detail)
    for k, v in pairs(extra) do merged[k] = v end
    detail = cjson.encode(merged)
  end
  redis.call('XADD', P .. 'audit', 'MAXLEN', '~', a[5], '*', 'at', NOW_ISO, 'actor', a[1],
             'action', a[2], 'target', a[3], 'detail', detail)
end
