-- Lease up to ARGV[5] due webhook deliveries for ARGV[6] ms to the caller's token ARGV[7]: each
-- one's score in tq:webhooks becomes its lease expiry, so a deliverer that dies (SIGKILL) leaves
-- it due again once the lease runs out (at least once). Counts the attempt before it is made.
-- Returns {{delivery, job fields (flat)}, ...}.
local limit, lease_ms, token = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local due = redis.call('ZRANGEBYSCORE', P .. 'webhooks', '-inf', int(NOW_MS), 'LIMIT', 0, limit)
local claimed = {}
for _, delivery in ipairs(due) do
  local job = P .. 'webhook:' .. delivery
  if redis.call('EXISTS', job) == 1 then
    redis.call('ZADD', P .. 'webhooks', int(NOW_MS + lease_ms), delivery)
    redis.call('HINCRBY', job, 'attempts', 1)
    redis.call('HSET', job, 'lease', token)
    table.insert(claimed, {delivery, redis.call('HGETALL', job)})
  else
    redis.call('ZREM', P .. 'webhooks', delivery)
  end
end
return claimed
