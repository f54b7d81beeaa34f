-- set_policy.lua (after lib.lua): replaces a subject's policy ('*' = the whole account).
-- ARGV[3] subject id, ARGV[4] the policy (JSON {subject_id, spending_enabled, budgets, rate_limits}),
-- ARGV[5] actor
local subject, policy = ARGV[3], cjson.decode(ARGV[4])

local function same(a, b)
  if type(a) ~= 'table' or type(b) ~= 'table' then
    return a == b
  end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k, _ in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local existing = get_policy(subject)
if not (existing and same(existing, policy)) then
  S.policies[subject] = policy
  S.dirty_policies[subject] = true
  local ev = new_event('policy_set')
  ev.subject_id = subject
  ev.actor = ARGV[5]
  ev.before = existing or nil
  ev.after = policy
end
flush()
return ok(policy)
