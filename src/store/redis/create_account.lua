-- create_account.lua (after lib.lua)
-- ARGV[3] parent id, ARGV[4] plan id, ARGV[5] billing anchor ms ('' = now),
-- ARGV[6] overage enabled ('1'/'0'), ARGV[7] overage cap, ARGV[8] suspended ('1'/'0'),
-- ARGV[9] actor (the token's name, for the audit trail)
local parent, plan, anchor = ARGV[3], ARGV[4], arg_opt_int(5)
local overage_enabled, overage_cap, suspended = ARGV[6] == '1', arg_int(7), ARGV[8] == '1'

if open_account() then
  local acc = S.a.account
  local same = acc.parent_id == parent and acc.plan_id == plan
    and acc.overage_enabled == overage_enabled and acc.overage_cap == overage_cap
    and acc.suspended == suspended and (anchor == nil or anchor == acc.billing_anchor)
  flush()
  if not same then
    return fail('IDEMPOTENCY_CONFLICT', 'account_id', 'account_id')
  end
  return ok(acc)
end

anchor = anchor or NOW
local start, stop = period_bounds(anchor, NOW)
S.a = {
  account = {
    account_id = ACCOUNT_ID, parent_id = parent, plan_id = plan, billing_anchor = anchor,
    overage_enabled = overage_enabled, overage_cap = overage_cap, suspended = suspended,
    created_at = NOW, thresholds = {}, allowance_alert_percent = 0, top_up_threshold = 0,
    top_up_amount = 0,
  },
  seq = 0, debt = 0, overage_used = 0, overage_held = 0, overage_total = 0,
  period_start = start, period_end = stop, fired = {},
}
local created = new_event('account_created')
created.actor = ARGV[9]
created.after = copy(S.a.account)
issue_allowance()
arm_alerts()
flush()
return ok(S.a.account)
