-- release.lua (after lib.lua): returns the whole remaining hold. ARGV[3] reservation id
local id = ARGV[3]
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local r = get_res(id)
if r == nil then
  flush()
  return fail('RESERVATION_NOT_FOUND')
end
local released, replayed = 0, false
if r.state == 'COMMITTED' then
  flush()
  return fail('RESERVATION_COMMITTED')
elseif r.state == 'RELEASED' then
  released, replayed = r.released or 0, true
elseif r.state == 'HELD' then
  local ev = reservation_event('released', r)
  released = release_holds(r, ev)
  adjust_budgets(r)
  return_free_units(r)
  r.state = 'RELEASED'
  r.released = released
  put_res(r)
end
flush()
return ok({reservation = r, released = released, balance = balance(), replayed = replayed})
