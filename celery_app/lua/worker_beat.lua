-- A worker's heartbeat: its record (expiring after ARGV[6] ms, last_heartbeat stamped here) and
-- its last beat in the set of known workers; the first beat of a worker emits worker.joined.
-- ARGV[5] hostname, [6] record TTL (ms), [7..] record field/value pairs. Returns 1 if new.
local hostname = ARGV[5]
local record = P .. 'worker:' .. hostname
local fields = {}
for i = 7, #ARGV do table.insert(fields, ARGV[i]) end
redis.call('HSET', record, 'last_heartbeat', NOW_ISO, unpack(fields))
redis.call('PEXPIRE', record, ARGV[6])
local new = redis.call('ZADD', P .. 'workers', int(NOW_MS), hostname)
if new == 1 then
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'type', 'worker.joined',
             'data', cjson.encode({worker_id = hostname}))
end
return new
