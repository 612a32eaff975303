-- Record how one webhook attempt ended; only the holder of the lease may (a deliverer whose lease
-- ran out and was taken over is told 'stale'). ARGV[5] delivery, [6] lease token, [7] callback
-- state: delivered | retrying | failed, [8] HTTP status ('' for none), [9] error ('' for none),
-- [10] delay of the next attempt in ms (retrying; due on Redis's clock), [11] metric outcome (delivered | retrying | failed |
-- refused). Updates the envelope's callback fields and emits task.callback while the envelope
-- still belongs to this delivery. Returns 'ok' or 'stale'.
local delivery, token, outcome = ARGV[5], ARGV[6], ARGV[7]
local status, err = ARGV[8], ARGV[9]
local job = P .. 'webhook:' .. delivery
local lease, id, attempts = unpack(redis.call('HMGET', job, 'lease', 'task_id', 'attempts'))
if lease ~= token then return 'stale' end
if outcome == 'retrying' then
  redis.call('ZADD', P .. 'webhooks', int(NOW_MS + tonumber(ARGV[10])), delivery)
  redis.call('HDEL', job, 'lease')
else
  redis.call('ZREM', P .. 'webhooks', delivery)
  redis.call('DEL', job)
end
redis.call('HINCRBY', P .. 'metrics:webhooks', ARGV[11], 1)
local h = load(id)
if not h or redis.call('HGET', task_key(id), 'cb_delivery') ~= delivery then return 'ok' end
redis.call('HSET', task_key(id), 'cb_state', outcome, 'cb_attempts', attempts)
if status ~= '' then redis.call('HSET', task_key(id), 'cb_status', status)
else redis.call('HDEL', task_key(id), 'cb_status') end
if err ~= '' then redis.call('HSET', task_key(id), 'cb_error', err)
else redis.call('HDEL', task_key(id), 'cb_error') end
emit('task.callback', id, h, {delivery_id = delivery, callback = {
  state = outcome, attempts = tonumber(attempts),
  last_status = status ~= '' and tonumber(status) or cjson.null,
  last_error = err ~= '' and err or cjson.null}})
return 'ok'
