-- A pending task whose Celery message exists nowhere (lost between kombu's BRPOP and its write
-- to unacked, e.g. when Redis refused that write): queue a new message under a new delivery —
-- only if the task is still pending with the delivery that was found missing. Any copy of the
-- old message that still turns up is then stale, and skipped at claim.
-- ARGV[5] id, [6] the missing delivery, [7] new delivery, [8] new message.
-- Returns 1 when re-published, 0 when the task moved on meanwhile.
local id, lost, delivery, message = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local h = load(id)
if not h or h.state ~= 'pending' or (h.delivery or '') ~= lost then return 0 end
local parked = redis.call('HGET', P .. 'delayed:msg', id)  -- held back by a limit: not lost
if parked and string.sub(parked, 1, #lost + 1) == lost .. '\n' then return 0 end
update(id, {'delivery', delivery})
index_move(id, h, 'pending', 'pending')
push(id, h, delivery, message)  -- queued_ms stays: it has been waiting since then
emit('task.submitted', id, h, {recovered = 'message lost'})
return 1
