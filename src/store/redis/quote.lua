-- quote.lua (after lib.lua): ARGV[3] subject id, ARGV[4] amount. Changes nothing but the
-- settling every script does first.
local amount = arg_int(4)
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local _, reason = spendable(amount, 0)
flush()
return ok({amount = amount, affordable = reason == nil, denial = reason, balance = balance()})
