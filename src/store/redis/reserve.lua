-- reserve.lua (after lib.lua): a pre-flight hold, all or nothing unless min_amount is given.
-- ARGV[3] reservation id, ARGV[4] subject id, ARGV[5] amount, ARGV[6] min amount (0 = none),
-- ARGV[7] ttl seconds, ARGV[8] priced lines (JSON, '' = none), ARGV[9] rate card version,
-- ARGV[10] number of labels n, ARGV[11..10+2n] label key, value, ...
local id, subject, amount, min_amount, ttl = ARGV[3], ARGV[4], arg_int(5), arg_int(6), arg_int(7)
local lines, card_version = arg_json(8), ARGV[9]
local labels, nlabels = {}, arg_int(10)
for i = 1, nlabels do
  labels[ARGV[9 + 2 * i]] = ARGV[10 + 2 * i]
end

local function same_labels(a, b)
  for k, v in pairs(a) do
    if b[k] ~= v then return false end
  end
  for k, v in pairs(b) do
    if a[k] ~= v then return false end
  end
  return true
end

if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end

local r = get_res(id)
if r ~= nil then
  flush()
  local same_items = true
  if #lines == 0 then
    same_items = #(r.lines or {}) == 0 and r.requested == amount
  elseif #(r.lines or {}) ~= #lines then
    same_items = false
  else
    for i, l in ipairs(lines) do
      if r.lines[i].sku ~= l.sku or r.lines[i].quantity ~= l.quantity then same_items = false end
    end
  end
  local same = r.subject_id == subject and same_items and r.min_amount == min_amount
    and r.ttl_seconds == ttl and same_labels(r.labels, labels)
  if not same then
    return fail('IDEMPOTENCY_CONFLICT', 'reservation_id', 'reservation_id')
  end
  return ok({denial_detail = '', reservation = r, balance = balance(), replayed = true})
end

local held, total = priced(amount, lines)
local want, rates, charges, retry_at = decide(subject, total, min_amount, labels, skus_of(held))
if want == nil then
  local reason, detail
  reason, detail, retry_at = rates, charges, retry_at
  flush()
  return ok({denial = reason, denial_detail = detail, balance = balance(), replayed = false,
    retry_at = retry_at})
end

r = {
  reservation_id = id, account_id = ACCOUNT_ID, subject_id = subject, state = 'HELD',
  requested = total, granted = want, min_amount = min_amount, ttl_seconds = ttl,
  held = want, committed = 0, expires_at = NOW + ttl * 1000, created_at = NOW,
  allocations = {}, labels = labels, late = false, captures = {}, budget_charges = charges,
  lines = held, card_version = card_version, free_window = S.a.period_start,
}
take_free_units(r)
for _, rc in ipairs(rates) do
  usage_set(rc[1], rc[2], rc[3])
end
for _, c in ipairs(charges) do
  add_usage(c.key, c.window, c.amount)
end
local ev = reservation_event('reserved', r)
local need = want
for _, g in ipairs(drawdown()) do
  if need == 0 then break end
  local take = math.min(g.remaining, need)
  if take > 0 then
    g.remaining = g.remaining - take
    g.held = g.held + take
    need = need - take
    touch_grant(g)
    table.insert(r.allocations, {grant_id = g.grant_id, held = take, committed = 0})
    move(ev, g.grant_id, 'available', 'held', take)
  end
end
if need > 0 then
  S.a.overage_held = S.a.overage_held + need
  table.insert(r.allocations, {grant_id = OVERAGE, held = need, committed = 0})
  move(ev, OVERAGE, 'overage', 'held', need)
end
put_res(r)
flush()
return ok({denial_detail = '', reservation = r, balance = balance(), replayed = false})
