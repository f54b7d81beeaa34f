-- update_account.lua (after lib.lua); '' leaves a field as it is.
-- ARGV[3] overage enabled ('1'/'0'/''), ARGV[4] overage cap, ARGV[5] suspended ('1'/'0'/''),
-- ARGV[6] parent id ('' = unchanged), ARGV[7] '1' when ARGV[6] is given,
-- ARGV[8] threshold levels (JSON array, '' = unchanged), ARGV[9] allowance alert percent,
-- ARGV[10] top-up threshold and ARGV[11] top-up amount ('' = unchanged), ARGV[12] actor
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local acc = S.a.account
local before = copy(acc)
local changed = false
local function set(field, value)
  if value ~= nil and acc[field] ~= value then
    acc[field] = value
    changed = true
  end
end
if ARGV[3] ~= '' then set('overage_enabled', ARGV[3] == '1') end
set('overage_cap', arg_opt_int(4))
if ARGV[5] ~= '' then set('suspended', ARGV[5] == '1') end
if ARGV[7] == '1' then set('parent_id', ARGV[6]) end
if ARGV[8] ~= '' then
  local levels = cjson.decode(ARGV[8])
  local same = #levels == #acc.thresholds
  for i, v in ipairs(levels) do
    if acc.thresholds[i] ~= v then same = false end
  end
  if not same then
    acc.thresholds = levels
    changed = true
  end
end
set('allowance_alert_percent', arg_opt_int(9))
set('top_up_threshold', arg_opt_int(10))
set('top_up_amount', arg_opt_int(11))
if changed then
  local ev = new_event('account_updated')
  ev.actor = ARGV[12]
  ev.before = before
  ev.after = copy(acc)
end
flush()
return ok(acc)
