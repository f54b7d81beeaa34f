-- get_balance.lua (after lib.lua): ARGV[3] subject id ('' = none): with a subject, the answer
-- also lists the budgets that apply to it and what they have used.
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
flush()
local b = balance()
if ARGV[3] ~= '' then
  b.budgets = subject_budgets(ARGV[3])
end
return ok(b)
