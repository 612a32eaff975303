-- Remove up to ARGV[5] entries from the DLQ stream; their envelopes stay in dead_letter but no
-- longer point at an entry. ARGV[6] audit entry (lib.lua audit), written when any entry went.
-- Returns how many were removed.
local entries = redis.call('XRANGE', P .. 'dlq', '-', '+', 'COUNT', ARGV[5])
if #entries > 0 then audit(ARGV[6], {cleared = #entries}) end
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'task_id' then redis.call('HDEL', task_key(fields[i + 1]), 'dlq_id') end
  end
  redis.call('XDEL', P .. 'dlq', entry[1])
end
return #entries
