-- quote.lua (after lib.lua): ARGV[3] subject id, ARGV[4] amount, ARGV[5] priced lines (JSON,
-- '' = none). Changes nothing but the settling every script does first.
local amount, lines = arg_int(4), arg_json(5)
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local held, total = priced(amount, lines)
local want, reason = decide(ARGV[3], total, 0, {}, skus_of(held))
if want then reason = nil end
local free = 0
for _, l in ipairs(held) do
  free = free + l.free_applied
end
flush()
return ok({amount = total, affordable = reason == nil, denial = reason, balance = balance(),
  lines = held, free_applied = free})
