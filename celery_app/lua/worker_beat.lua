-- A worker's heartbeat: its record (expiring after ARGV[6] ms, last_heartbeat stamped here) and
-- its last beat in the set of known workers; the first beat of a worker emits worker.joined,
-- every beat worker.heartbeat (the record's public fields: what a live view of the workers
-- needs, without asking).
-- ARGV[5] hostname, [6] record TTL (ms), [7..] record field/value pairs. Returns 1 if new.
local hostname = ARGV[5]
local record = P .. 'worker:' .. hostname
local fields = {}
local beat = {worker_id = hostname, last_heartbeat = NOW_ISO}
local NUMBERS = {active_tasks = true, concurrency = true}
local TEXT = {state = true, started_at = true}
for i = 7, #ARGV, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  table.insert(fields, name); table.insert(fields, value)
  if NUMBERS[name] then beat[name] = tonumber(value)
  elseif TEXT[name] then beat[name] = value
  elseif name == 'queues' then beat.queues = cjson.decode(value) end
end
redis.call('HSET', record, 'last_heartbeat', NOW_ISO, unpack(fields))
redis.call('PEXPIRE', record, ARGV[6])
local new = redis.call('ZADD', P .. 'workers', int(NOW_MS), hostname)
if new == 1 then
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'type', 'worker.joined',
             'data', cjson.encode({worker_id = hostname}))
end
redis.call('XADD', P .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'type', 'worker.heartbeat',
           'data', cjson.encode(beat))
return new
