-- extend.lua (after lib.lua): the hold now expires ttl seconds from now.
-- ARGV[3] reservation id, ARGV[4] ttl seconds
local id, ttl = ARGV[3], arg_int(4)
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local r = get_res(id)
if r == nil then
  flush()
  return fail('RESERVATION_NOT_FOUND')
end
local refusal = ({COMMITTED = 'RESERVATION_COMMITTED', RELEASED = 'RESERVATION_RELEASED',
  EXPIRED = 'RESERVATION_EXPIRED'})[r.state]
if refusal then
  flush()
  return fail(refusal)
end
r.expires_at = NOW + ttl * 1000
reservation_event('extended', r)
put_res(r)
flush()
return ok(r)
