-- create_grant.lua (after lib.lua)
-- ARGV[3] grant id, ARGV[4] kind, ARGV[5] amount, ARGV[6] priority, ARGV[7] effective_at ms
-- ('' = now), ARGV[8] expires_at ms ('' = never), ARGV[9] unit price, ARGV[10] actor
local id, kind, amount, priority = ARGV[3], ARGV[4], arg_int(5), arg_int(6)
local effective_at, expires_at, unit_price = arg_opt_int(7), arg_opt_int(8), arg_int(9)

if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local existing = find_grant(id)
if existing ~= nil then
  local same = existing.kind == kind and existing.amount == amount
    and existing.priority == priority and existing.expires_at == expires_at
    and existing.unit_price == unit_price
    and (effective_at == nil or effective_at == existing.effective_at)
  flush()
  if not same then
    return fail('IDEMPOTENCY_CONFLICT', 'grant_id', 'grant_id')
  end
  return ok(existing)
end
local start = effective_at or NOW
if expires_at ~= nil and (expires_at <= NOW or expires_at <= start) then
  flush()
  return fail('INVALID_ARGUMENT', 'expires_at', 'must be later than now and than effective_at')
end
local open = 0
for _, g in pairs(S.grants) do
  if not g.closed and not g.is_voided then
    open = open + g.remaining + g.held
  end
end
if open + amount > MAX then
  flush()
  return fail('INVALID_ARGUMENT', 'amount_micros', "the account's total would reach 2^53 micro-credits")
end

local g = add_grant(id, kind, amount, priority, start, expires_at, unit_price, ARGV[10])
flush()
return ok(g)
