-- Pause or resume one queue, cluster-wide and persisted (workers apply it: celery_app/control.py;
-- the claim script refuses its tasks while paused). Emits queue.paused / queue.resumed once,
-- when the flag changed. ARGV[5] queue name, [6] '1' pause | '0' resume, [7] audit entry
-- (lib.lua audit), written when the flag changed. Returns 1 if changed.
local queue, pause = ARGV[5], ARGV[6] == '1'
local flags, field = P .. 'gates', 'queue:' .. queue  -- keys.queue_gate
local will_change = (redis.call('HEXISTS', flags, field) == 1) ~= pause
if will_change then audit(ARGV[7]) end  -- first: an entry refused leaves the flag as it was
local changed
if pause then changed = redis.call('HSETNX', flags, field, NOW_ISO)
else changed = redis.call('HDEL', flags, field) end
if changed == 1 then
  local kind = pause and 'queue.paused' or 'queue.resumed'
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'type', kind,
             'data', cjson.encode({queue = queue, paused = pause}))
end
return changed
