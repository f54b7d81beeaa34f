-- get_policy.lua (after lib.lua): a subject's own policy, or an open one. ARGV[3] subject id
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local p = get_policy(ARGV[3])
flush()
if not p then
  p = {subject_id = ARGV[3], spending_enabled = true, budgets = {}, rate_limits = {}}
end
return ok(p)
