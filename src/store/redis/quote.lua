-- quote.lua (after lib.lua): ARGV[3] subject id, ARGV[4] amount. Changes nothing but the
-- settling every script does first.
local amount = arg_int(4)
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local want, reason = decide(ARGV[3], amount, 0, {})
if want then reason = nil end
flush()
return ok({amount = amount, affordable = reason == nil, denial = reason, balance = balance()})
