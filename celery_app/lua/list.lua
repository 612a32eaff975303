-- One page of task ids and the number of tasks matching any combination of filters.
-- ARGV[5] sort: created | updated | priority, [6] '1' for descending, [7] offset, [8] count,
-- [9] state ranks, space separated ('' for every state; a status is its states' ranks),
-- [10] priority 0-3 ('' for any), [11] type ('' for any).
-- Returns {total, id, id, ...} (ids in page order).
--
-- Most combinations are "runs": contiguous score ranges of one index whose members are in the
-- wanted order (lib.lua describes the scores). One run is read by rank, O(log n + page);
-- several are merged by a binary search on the sort value over ZCOUNTs (O(runs x log n x
-- log span)) and then at most a page from each, so a deep page costs what the first does.
-- The combinations no index orders (type with state and a created/priority sort; priority
-- with the updated sort) read the smallest side whole and check the others: O(that side).
local sort, desc, offset, count = ARGV[5], ARGV[6] == '1', tonumber(ARGV[7]), tonumber(ARGV[8])
local ranks_arg, prio_arg, task_type = ARGV[9], ARGV[10], ARGV[11]
local TOP = 9007199254740992  -- 2^53: above every score
local CHUNK = 500

local all_states = ranks_arg == ''
local ranks, wanted_rank = {}, {}
if all_states then
  for r = 0, 7 do table.insert(ranks, r) end
else
  for r in string.gmatch(ranks_arg, '%-?%d+') do table.insert(ranks, tonumber(r)) end
end
for _, r in ipairs(ranks) do wanted_rank[r] = true end
local prio = prio_arg ~= '' and tonumber(prio_arg) or nil
local typed = task_type ~= ''
local plo, phi = 0, 4 * PRIORITY_UNIT
if prio then plo, phi = prio * PRIORITY_UNIT, (prio + 1) * PRIORITY_UNIT end

local function known_types()
  if typed then return {task_type} end
  local found = redis.call('SMEMBERS', P .. 'types')
  table.sort(found)
  return found
end

-- A run: members of `key` with lo <= score < hi, in sort order; sort value = score - base.
local function run(key, lo, hi, base) return {key = key, lo = lo, hi = hi, base = base} end

local function runs_for_query()
  local runs = {}
  if sort ~= 'updated' then
    if all_states then
      local scope = typed and ('type:' .. task_type) or 'all'
      if sort == 'created' and not prio then
        return {run(idx('created', scope), 0, TOP, 0)}
      end  -- priority order; within one priority it is created order
      return {run(idx('priority', scope), plo, phi, sort == 'created' and plo or 0)}
    end
    if typed then return nil end
    for _, r in ipairs(ranks) do
      local base = r * STATE_UNIT
      if sort == 'priority' then
        table.insert(runs, run(state_idx(), base + plo, base + phi, base))
      else
        for p = (prio or 0), (prio or 3) do
          local lo = base + p * PRIORITY_UNIT
          table.insert(runs, run(state_idx(), lo, lo + PRIORITY_UNIT, lo))
        end
      end
    end
    return runs
  end
  if prio then return nil end
  for _, t in ipairs(known_types()) do
    for _, r in ipairs(ranks) do
      local base = r * UPDATED_UNIT
      table.insert(runs, run(updated_idx(t), base, base + UPDATED_UNIT, base))
    end
  end
  return runs
end

local function zcount(key, lo, hi) return redis.call('ZCOUNT', key, int(lo), int(hi)) end

-- Positions [a, b) of the ascending order, for the requested page and direction.
local function window(total)
  if desc then return math.max(total - offset - count, 0), total - offset end
  return offset, math.min(offset + count, total)
end

local function reversed(list)
  local out = {}
  for i = #list, 1, -1 do table.insert(out, list[i]) end
  return out
end

local function by_value_then_id(x, y)
  if x[1] ~= y[1] then return x[1] < y[1] end
  return x[2] < y[2]
end

local function merged_page(runs)
  local live, total = {}, 0
  for _, r in ipairs(runs) do
    local n = zcount(r.key, r.lo, r.hi - 1)
    if n > 0 then table.insert(live, r); total = total + n end
  end
  local a, b = window(total)
  if b <= a then return total, {} end
  if #live == 1 then
    local r = live[1]
    local before = redis.call('ZCOUNT', r.key, '-inf', '(' .. int(r.lo))
    return total, redis.call('ZRANGE', r.key, before + a, before + b - 1)
  end
  local vmin, vmax
  for _, r in ipairs(live) do
    local first = redis.call('ZRANGEBYSCORE', r.key, int(r.lo), int(r.hi - 1), 'WITHSCORES',
                             'LIMIT', 0, 1)
    local last = redis.call('ZREVRANGEBYSCORE', r.key, int(r.hi - 1), int(r.lo), 'WITHSCORES',
                            'LIMIT', 0, 1)
    local f, l = tonumber(first[2]) - r.base, tonumber(last[2]) - r.base
    if not vmin or f < vmin then vmin = f end
    if not vmax or l > vmax then vmax = l end
  end
  local function at_most(t)  -- members whose sort value is <= t
    local n = 0
    for _, r in ipairs(live) do
      if r.base + t >= r.lo then n = n + zcount(r.key, r.lo, math.min(r.base + t, r.hi - 1)) end
    end
    return n
  end
  local lo_t, hi_t = vmin, vmax  -- the smallest value with more than `a` members at or below
  while lo_t < hi_t do
    local mid = math.floor((lo_t + hi_t) / 2)
    if at_most(mid) > a then hi_t = mid else lo_t = mid + 1 end
  end
  local before = at_most(lo_t - 1)
  local got = {}
  for _, r in ipairs(live) do
    local flat = redis.call('ZRANGEBYSCORE', r.key, int(math.max(r.base + lo_t, r.lo)),
                            int(r.hi - 1), 'WITHSCORES', 'LIMIT', 0, b - before)
    for i = 1, #flat, 2 do table.insert(got, {tonumber(flat[i + 1]) - r.base, flat[i]}) end
  end
  table.sort(got, by_value_then_id)
  local ids = {}
  for i = a - before + 1, b - before do table.insert(ids, got[i][2]) end
  return total, ids
end

-- Scores of `ids` in `key` (false where absent), in chunks that unpack() can take.
local function scores(key, ids)
  local out = {}
  for i = 1, #ids, CHUNK do
    local part = redis.call('ZMSCORE', key, unpack(ids, i, math.min(i + CHUNK - 1, #ids)))
    for _, score in ipairs(part) do table.insert(out, score) end
  end
  return out
end

local function members(key, lo, hi)
  return redis.call('ZRANGEBYSCORE', key, int(lo), int(hi - 1))
end

-- The smallest of the filters' sides, read whole; the other filters checked per member.
local function filtered_page()
  local sides = {}
  if not all_states then
    local n, lo_hi = 0, {}
    for _, r in ipairs(ranks) do
      local lo, hi = r * STATE_UNIT + plo, r * STATE_UNIT + phi
      n = n + zcount(state_idx(), lo, hi - 1)
      table.insert(lo_hi, {lo, hi})
    end
    table.insert(sides, {n = n, read = function()
      local ids = {}
      for _, range in ipairs(lo_hi) do
        for _, id in ipairs(members(state_idx(), range[1], range[2])) do table.insert(ids, id) end
      end
      return ids
    end})
  end
  if typed or prio then
    local key = idx('priority', typed and ('type:' .. task_type) or 'all')
    table.insert(sides, {n = zcount(key, plo, phi - 1), read = function()
      return members(key, plo, phi)
    end})
  end
  table.sort(sides, function(x, y) return x.n < y.n end)
  local ids = sides[1].read()
  local state_scores = scores(state_idx(), ids)
  local of_type = typed and scores(idx('created', 'type:' .. task_type), ids) or nil
  local updated = {}
  if sort == 'updated' then
    for _, t in ipairs(known_types()) do
      for i, score in ipairs(scores(updated_idx(t), ids)) do
        if score then updated[i] = tonumber(score) end
      end
    end
  end
  local matched = {}
  for i, id in ipairs(ids) do
    local score = state_scores[i] and tonumber(state_scores[i])
    if score and (not of_type or of_type[i]) then
      local rank = math.floor(score / STATE_UNIT)
      local within = score - rank * STATE_UNIT  -- priority * 1e13 + created
      local p = math.floor(within / PRIORITY_UNIT)
      if wanted_rank[rank] and (not prio or p == prio) then
        local value = within
        if sort == 'created' then value = within - p * PRIORITY_UNIT
        elseif sort == 'updated' then value = (updated[i] or 0) - rank * UPDATED_UNIT end
        table.insert(matched, {value, id})
      end
    end
  end
  table.sort(matched, by_value_then_id)
  local a, b = window(#matched)
  local page = {}
  for i = a + 1, b do table.insert(page, matched[i][2]) end
  return #matched, page
end

local runs = runs_for_query()
local total, ids
if runs then total, ids = merged_page(runs) else total, ids = filtered_page() end
if desc then ids = reversed(ids) end
local answer = {total}
for _, id in ipairs(ids) do table.insert(answer, id) end
return answer
