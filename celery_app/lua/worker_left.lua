-- A worker is gone (clean shutdown, or its record expired): forget it and emit worker.left,
-- exactly once. ARGV[5] hostname, [6] reason, [7] '1' to drop a still-existing record too.
-- Returns 1 if the worker was known.
local hostname = ARGV[5]
local record = P .. 'worker:' .. hostname
if ARGV[7] ~= '1' and redis.call('EXISTS', record) == 1 then return 0 end
redis.call('DEL', record)
if redis.call('ZREM', P .. 'workers', hostname) == 0 then return 0 end
redis.call('XADD', P .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'type', 'worker.left',
           'data', cjson.encode({worker_id = hostname, reason = ARGV[6]}))
return 1
