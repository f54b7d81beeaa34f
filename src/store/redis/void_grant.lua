-- void_grant.lua (after lib.lua): ARGV[3] grant id, ARGV[4] actor
local id = ARGV[3]
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local g = find_grant(id)
if g == nil then
  flush()
  return fail('GRANT_NOT_FOUND')
end
if not (g.is_voided or g.closed) then
  local ev = new_event('grant_voided')
  ev.actor = ARGV[4]
  ev.before = copy(g)
  local amount = g.remaining
  g.remaining = 0
  g.voided = g.voided + amount
  g.is_voided = true
  forget_live()
  touch_grant(g)
  ev.detail = id
  move(ev, id, 'available', 'voided', amount)
  ev.after = copy(g)
end
flush()
return ok(g)
