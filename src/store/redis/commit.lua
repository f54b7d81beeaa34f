-- commit.lua (after lib.lua): charges the real amount of a hold, in full or as a partial capture.
-- ARGV[3] reservation id, ARGV[4] amount, ARGV[5] capture id ('' = final commit),
-- ARGV[6] overrun ('CHARGE' or 'CAP'), ARGV[7] provider cost, ARGV[8] items (JSON [{sku,
-- quantity}], '' = none): priced at the hold's prices, its free units first
local id, amount, capture, overrun_mode, cost = ARGV[3], arg_int(4), ARGV[5], ARGV[6], arg_int(7)
local items = arg_json(8)
local final = capture == ''

if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local r = get_res(id)
if r == nil then
  flush()
  return fail('RESERVATION_NOT_FOUND')
end

local earlier, what
if final then
  earlier, what = r.commit, 'reservation_id'
else
  earlier, what = r.captures[capture], 'capture_id'
end
if earlier ~= nil then
  flush()
  local p = earlier.params
  local same_items = #(p.lines or {}) == #items
  for i, it in ipairs(items) do
    if not same_items or p.lines[i].sku ~= it.sku or p.lines[i].quantity ~= it.quantity then
      same_items = false
    end
  end
  if p.amount ~= amount or p.overrun ~= overrun_mode or p.cost ~= cost or not same_items then
    return fail('IDEMPOTENCY_CONFLICT', what, what)
  end
  return ok({reservation = r, effect = earlier.effect, balance = balance(), replayed = true})
end
if r.state == 'RELEASED' then
  flush()
  return fail('RESERVATION_RELEASED')
end
if r.state == 'COMMITTED' then
  flush()
  return fail('RESERVATION_COMMITTED')
end

for i, it in ipairs(items) do
  local found = false
  for _, h in ipairs(r.lines or {}) do
    if h.sku == it.sku then found = true end
  end
  if not found then
    flush()
    return fail('INVALID_ARGUMENT', 'items[' .. fmt(i - 1) .. '].sku', it.sku .. ' is not an item of the hold')
  end
end
local charged_items = {}
if #items > 0 then
  amount = 0
  for _, it in ipairs(items) do
    local h
    for _, candidate in ipairs(r.lines) do
      if h == nil and candidate.sku == it.sku then h = candidate end
    end
    local free = math.min(it.quantity, h.free_left)
    h.free_left = h.free_left - free
    local line = line_amount(it.quantity - free, h.price_num, h.price_den)
    table.insert(charged_items, {sku = it.sku, quantity = it.quantity, amount = line})
    amount = amount + line
  end
end
local late = r.state == 'EXPIRED'
local charge = amount
if overrun_mode == 'CAP' then
  charge = math.min(amount, math.max(r.granted - r.committed, 0))
end
local overrun = math.max(amount - r.held, 0)
local kind = 'committed'
if not final then kind = 'captured' end
local ev = reservation_event(kind, r)
ev.cost = cost
ev.detail = capture
ev.items = charged_items

-- 1. From the hold, in the order it was allocated.
local from_hold = math.min(charge, r.held)
local rest = from_hold
for _, al in ipairs(r.allocations) do
  local take = math.min(al.held, rest)
  if take > 0 then
    al.held = al.held - take
    al.committed = al.committed + take
    rest = rest - take
    if al.grant_id == OVERAGE then
      S.a.overage_held = S.a.overage_held - take
      S.a.overage_used = S.a.overage_used + take
      S.a.overage_total = S.a.overage_total + take
    else
      local g = S.grants[al.grant_id]
      g.held = g.held - take
      g.spent = g.spent + take
      touch_grant(g)
    end
    move(ev, al.grant_id, 'held', 'spent', take)
  end
end
r.held = r.held - from_hold

local function add_committed(grant_id, take)
  for _, al in ipairs(r.allocations) do
    if al.grant_id == grant_id then
      al.committed = al.committed + take
      return
    end
  end
  table.insert(r.allocations, {grant_id = grant_id, held = 0, committed = take})
end

-- 2. The excess: available credits, then overage, then debt.
local excess = charge - from_hold
for _, g in ipairs(drawdown()) do
  if excess == 0 then break end
  local take = math.min(g.remaining, excess)
  if take > 0 then
    g.remaining = g.remaining - take
    g.spent = g.spent + take
    excess = excess - take
    touch_grant(g)
    add_committed(g.grant_id, take)
    move(ev, g.grant_id, 'available', 'spent', take)
  end
end
local from_overage = math.min(overage_room(), excess)
if from_overage > 0 then
  S.a.overage_used = S.a.overage_used + from_overage
  S.a.overage_total = S.a.overage_total + from_overage
  excess = excess - from_overage
  add_committed(OVERAGE, from_overage)
  move(ev, OVERAGE, 'overage', 'spent', from_overage)
end
local debt = excess
if debt > 0 then
  S.a.debt = S.a.debt + debt
  add_committed(DEBT, debt)
  move(ev, DEBT, 'debt', 'spent', debt)
end
r.committed = r.committed + charge

-- 3. A final commit returns what is still held.
local released = 0
if final then
  released = release_holds(r, ev)
  return_free_units(r)
  r.state = 'COMMITTED'
end
r.late = r.late or late
adjust_budgets(r)
local effect = {charged = charge, released = released, overrun = overrun, debt = debt, late = late}
local record = {
  params = {amount = arg_int(4), overrun = overrun_mode, cost = cost, lines = items},
  effect = effect,
}
if final then
  r.commit = record
else
  r.captures[capture] = record
end
put_res(r)
flush()
return ok({reservation = r, effect = effect, balance = balance(), replayed = false})
