-- One page of task ids and the number of tasks matching any combination of filters.
-- ARGV[5] sort: created | updated | priority, [6] '1' for descending, [7] offset, [8] count,
-- [9] state ranks, space separated ('' for every state; a status is its states' ranks),
-- [10] priority 0-3 ('' for any), [11] type ('' for any), [12] plan for a combination no
-- index orders: '' chooses by cost, 'walk' or 'read' forces one (tests compare the two).
-- Returns {total, id, id, ...} (ids in page order).
--
-- Most combinations are "runs": contiguous score ranges of one index whose members are in the
-- wanted order (lib.lua describes the scores). One run is read by rank, O(log n + page);
-- several are merged by a binary search on the sort value over ZCOUNTs (O(runs x log n x
-- log span)) and then at most a page from each, so a deep page costs what the first does.
-- The combinations no index orders (type with state and a created/priority sort; priority
-- with the updated sort) have their total from ZCOUNTs where two of the filters make one
-- index range (type and state in the updated index, priority and state in the state index,
-- type and priority in the per-type priority index). Their page is then "walked": the runs of
-- one filter merged in sort order from the nearer end, the other filter checked per chunk
-- (ZMSCORE), until the page is reached: O(runs x log n + position / selectivity), a page or
-- two near either end. When that estimate exceeds the matches, and for type with state and
-- priority (no ZCOUNT gives that total), the smallest exact side is read whole and the other
-- filters checked per member: O(that side), never more than the smaller filter's side.
local sort, desc, offset, count = ARGV[5], ARGV[6] == '1', tonumber(ARGV[7]), tonumber(ARGV[8])
local ranks_arg, prio_arg, task_type, plan = ARGV[9], ARGV[10], ARGV[11], ARGV[12] or ''
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

-- The wanted states (and priority) in tq:idx:state, in created or priority order.
local function state_runs()
  local runs = {}
  for _, r in ipairs(ranks) do
    local base = r * STATE_UNIT
    if sort == 'priority' then
      local one = run(state_idx(), base + plo, base + phi, base)
      one.rank = r
      table.insert(runs, one)
    else
      for p = (prio or 0), (prio or 3) do
        local lo = base + p * PRIORITY_UNIT
        local one = run(state_idx(), lo, lo + PRIORITY_UNIT, lo)
        one.rank, one.prio = r, p
        table.insert(runs, one)
      end
    end
  end
  return runs
end

-- The wanted states of every known type (or the one given) in updated order.
local function updated_runs()
  local runs = {}
  for _, t in ipairs(known_types()) do
    for _, r in ipairs(ranks) do
      local base = r * UPDATED_UNIT
      local one = run(updated_idx(t), base, base + UPDATED_UNIT, base)
      one.rank, one.type = r, t
      table.insert(runs, one)
    end
  end
  return runs
end

local function runs_for_query()
  if sort ~= 'updated' then
    if all_states then
      local scope = typed and ('type:' .. task_type) or 'all'
      if sort == 'created' and not prio then
        return {run(idx('created', scope), 0, TOP, 0)}
      end  -- priority order; within one priority it is created order
      return {run(idx('priority', scope), plo, phi, sort == 'created' and plo or 0)}
    end
    if typed then return nil end
    return state_runs()
  end
  if prio then return nil end
  return updated_runs()
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

-- Checks for the filter a walk's runs do not hold: each takes ids, answers true/false each.
local function in_states(ids)
  local out = {}
  for i, score in ipairs(scores(state_idx(), ids)) do
    out[i] = score and wanted_rank[math.floor(tonumber(score) / STATE_UNIT)] or false
  end
  return out
end

local function in_type(ids)
  local out = {}
  for i, score in ipairs(scores(idx('created', 'type:' .. task_type), ids)) do
    out[i] = score and true or false
  end
  return out
end

local function of_priority(ids)
  local out = {}
  local key = idx('priority', typed and ('type:' .. task_type) or 'all')
  for i, score in ipairs(scores(key, ids)) do
    out[i] = score and math.floor(tonumber(score) / PRIORITY_UNIT) == prio or false
  end
  return out
end

-- Tasks of `t` in the state of rank `r` (any priority when `r` is nil) with priority `p` (any
-- when nil): one ZCOUNT where two of them are given, the smaller of the pairs' for three.
local function of_type_in(t, r)
  return zcount(updated_idx(t), r * UPDATED_UNIT, (r + 1) * UPDATED_UNIT - 1)
end
local function of_type_at(t, p)
  return zcount(idx('priority', 'type:' .. t), p * PRIORITY_UNIT, (p + 1) * PRIORITY_UNIT - 1)
end
local function in_state_at(r, p)
  local lo = r * STATE_UNIT + p * PRIORITY_UNIT
  return zcount(state_idx(), lo, lo + PRIORITY_UNIT - 1)
end

-- Where two of the filters are one index range and the runs of one of them are ordered by the
-- sort: {runs, keep (the check for the rest), total}; nil for other combinations. Runs that
-- cannot hold a match (a type without the priority, a state without the type) are left out,
-- so a walk never reads through them.
local function walk_plan()
  if sort ~= 'updated' and typed and not all_states and not prio then
    local total = 0
    for _, r in ipairs(ranks) do total = total + of_type_in(task_type, r) end
    local scope = 'type:' .. task_type
    local by_type = sort == 'created' and run(idx('created', scope), 0, TOP, 0)
                    or run(idx('priority', scope), 0, 4 * PRIORITY_UNIT, 0)
    local type_n, states_n, of_states = zcount(by_type.key, by_type.lo, by_type.hi - 1), 0, {}
    for _, r in ipairs(state_runs()) do
      if of_type_in(task_type, r.rank) > 0 and (not r.prio or of_type_at(task_type, r.prio) > 0)
      then
        table.insert(of_states, r)
        states_n = states_n + zcount(r.key, r.lo, r.hi - 1)
      end
    end
    if type_n <= states_n then return {runs = {by_type}, keep = in_states, total = total} end
    return {runs = of_states, keep = in_type, total = total}
  end
  if sort == 'updated' and prio and (all_states or not typed) then
    local total = 0
    if all_states then
      total = zcount(idx('priority', typed and ('type:' .. task_type) or 'all'), plo, phi - 1)
    else
      for _, r in ipairs(ranks) do total = total + in_state_at(r, prio) end
    end
    local runs, type_has, state_has = {}, {}, {}
    for _, r in ipairs(updated_runs()) do
      if type_has[r.type] == nil then type_has[r.type] = of_type_at(r.type, prio) > 0 end
      if state_has[r.rank] == nil then state_has[r.rank] = in_state_at(r.rank, prio) > 0 end
      if type_has[r.type] and state_has[r.rank] then table.insert(runs, r) end
    end
    return {runs = runs, keep = of_priority, total = total}
  end
  return nil
end

-- The page of a walk plan: the runs merged from the nearer end, `keep` checked per chunk of a
-- run, until the page's last member. Nil (read the side instead) when the estimate, position /
-- selectivity, exceeds the matches, or the walk reads more than the matches plus the page.
local function walked_page(w)
  local total = w.total
  local a, b = window(total)
  if b <= a then return total, {} end
  local down = total - a < b  -- walk from the top
  local need = down and total - a or b
  local cursors, stored = {}, 0
  for _, r in ipairs(w.runs) do
    local n = zcount(r.key, r.lo, r.hi - 1)
    if n > 0 then
      local first = redis.call('ZCOUNT', r.key, '-inf', '(' .. int(r.lo))
      table.insert(cursors, {r = r, first = first, n = n, taken = 0, buf = {}, pos = 1,
                             size = math.min(math.max(need, 16), CHUNK)})
      stored = stored + n
    end
  end
  if plan == '' and need * stored > total * total then return nil end
  local budget = plan == 'walk' and math.huge or total + need + CHUNK
  local read = 0
  -- The cursor's next kept member, reading chunks by rank; false when the run is done,
  -- nil when over budget.
  local function head(c)
    while c.pos > #c.buf do
      if c.taken >= c.n then return false end
      local k = math.min(c.size, c.n - c.taken)
      local from = down and c.first + c.n - c.taken - k or c.first + c.taken
      local flat = redis.call('ZRANGE', c.r.key, from, from + k - 1, 'WITHSCORES')
      c.taken, read = c.taken + k, read + k
      if read > budget then return nil end
      local ids, values = {}, {}
      for i = 1, #flat, 2 do
        table.insert(ids, flat[i]); table.insert(values, tonumber(flat[i + 1]) - c.r.base)
      end
      local kept = w.keep(ids)
      c.buf, c.pos, c.size = {}, 1, math.min(c.size * 2, CHUNK)
      local i1, i2, step = 1, #ids, 1
      if down then i1, i2, step = #ids, 1, -1 end
      for i = i1, i2, step do
        if kept[i] then table.insert(c.buf, {values[i], ids[i]}) end
      end
    end
    return c.buf[c.pos]
  end
  local walked = {}
  while #walked < need do
    local best, best_item
    for _, c in ipairs(cursors) do
      local item = head(c)
      if item == nil then return nil end
      if item and (not best_item or (by_value_then_id(item, best_item) ~= down)) then
        best, best_item = c, item
      end
    end
    if not best then break end
    table.insert(walked, best_item[2])
    best.pos = best.pos + 1
  end
  local ids = {}
  if down then  -- walked[k] is ascending position total - k
    for k = math.min(total - a, #walked), total - b + 1, -1 do table.insert(ids, walked[k]) end
  else
    for k = a + 1, math.min(b, #walked) do table.insert(ids, walked[k]) end
  end
  return total, ids
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
  if typed and not all_states then  -- type and state: ranges of the type's updated index
    local key, n = updated_idx(task_type), 0
    for _, r in ipairs(ranks) do
      n = n + zcount(key, r * UPDATED_UNIT, (r + 1) * UPDATED_UNIT - 1)
    end
    table.insert(sides, {n = n, read = function()
      local ids = {}
      for _, r in ipairs(ranks) do
        local lo = r * UPDATED_UNIT
        for _, id in ipairs(members(key, lo, lo + UPDATED_UNIT)) do table.insert(ids, id) end
      end
      return ids
    end})
  end
  table.sort(sides, function(x, y) return x.n < y.n end)
  local ids = sides[1].read()
  local state_scores = scores(state_idx(), ids)
  local of_type = typed and scores(idx('created', 'type:' .. task_type), ids) or nil
  local updated = {}
  if sort == 'updated' then  -- each id is in one type's index: ask the next only for the rest
    local rest = {}
    for i = 1, #ids do rest[i] = i end
    for _, t in ipairs(known_types()) do
      if #rest == 0 then break end
      local asked, left = {}, {}
      for k, i in ipairs(rest) do asked[k] = ids[i] end
      for k, score in ipairs(scores(updated_idx(t), asked)) do
        if score then updated[rest[k]] = tonumber(score) else table.insert(left, rest[k]) end
      end
      rest = left
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
if runs then total, ids = merged_page(runs)
else
  local w = plan ~= 'read' and walk_plan() or nil
  if w then total, ids = walked_page(w) end
  if not total then total, ids = filtered_page() end
end
if desc then ids = reversed(ids) end
local answer = {total}
for _, id in ipairs(ids) do table.insert(answer, id) end
return answer
