-- Create a task: envelope, indexes, event, and its Celery message (queued now, or parked until
-- due_ms when scheduled), in one step. With an idempotency key already seen, return that task.
-- ARGV[5] id, [6] idempotency key ('' for none), [7] its TTL (s), [8] delivery, [9] message,
-- [10] requested start ms ('' for none), [11] the request's hash, [12..] envelope field/value
-- pairs. The script stamps created_at/updated_at/created_ms and decides on Redis's clock whether
-- the task is due now (pending, queued) or later (scheduled, parked until then). An empty
-- message adopts a task that Celery publishes itself (a direct send_task/delay): envelope only.
-- The key's value is '<request hash>:<task id>'.
-- Returns {3, stamped} when it created the task: the field/value pairs the script wrote besides
-- ARGV[12..] (the envelope is those pairs, then ARGV[12..]; nothing else of it needs to travel
-- back); {1, envelope} when this very call is replayed (the task exists already), {0, envelope}
-- for an idempotent repeat of the same request, {2, envelope} when the key was used with a
-- different request (nothing created).
local id, idem, idem_ttl = ARGV[5], ARGV[6], ARGV[7]
local delivery, message, due, request_hash = ARGV[8], ARGV[9], ARGV[10], ARGV[11]

-- A repeat (same key, or this very call replayed by the client after a lost reply) rewrites a
-- value it already holds: a write, so a WAIT after it also covers the first call's writes.
if idem ~= '' then
  local seen = redis.call('GET', idem)
  if seen then
    local seen_hash, seen_id = string.match(seen, '^(%x*):(.+)$')
    if not seen_id then seen_id, seen_hash = seen, '' end
    if redis.call('EXISTS', task_key(seen_id)) == 1 then
      if seen_hash ~= '' and request_hash ~= '' and seen_hash ~= request_hash then
        return {2, envelope(seen_id)}
      end
      redis.call('SET', idem, seen, 'KEEPTTL')
      return {seen_id == id and 1 or 0, envelope(seen_id)}
    end
  end
  redis.call('SET', idem, request_hash .. ':' .. id, 'EX', idem_ttl)
end
if redis.call('EXISTS', task_key(id)) == 1 then
  if redis.call('HGET', task_key(id), 'delivery') ~= delivery then
    return redis.error_reply('task exists')
  end
  redis.call('HSET', task_key(id), 'delivery', delivery)
  return {1, envelope(id)}
end

local later = due ~= '' and tonumber(due) > NOW_MS
local fields = {'delivery', delivery, 'state', later and 'scheduled' or 'pending',
                'created_at', NOW_ISO, 'updated_at', NOW_ISO, 'created_ms', int(NOW_MS)}
if later then table.insert(fields, 'scheduled_at'); table.insert(fields, iso(tonumber(due))) end
local stamped = {unpack(fields)}
for i = 12, #ARGV do table.insert(fields, ARGV[i]) end
redis.call('HSET', task_key(id), unpack(fields))
local h = load(id)
index_add(id, h)
-- A new task is not parked (no envelope, nothing of it in tq:delayed: purge and promote
-- unpark whatever they drop), so its message goes straight onto its queue; lib's push, which
-- also unparks, is for tasks that may have waited there (promote, requeue).
if message == '' then  -- adopted: the message is published by Celery itself
elseif not later then redis.call('LPUSH', h.priority, message)
else park(id, due, delivery, message) end
emit('task.submitted', id, h)
count_submitted(h)
return {3, stamped}
