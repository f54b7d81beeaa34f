-- get_reservation.lua (after lib.lua): ARGV[3] reservation id
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local r = get_res(ARGV[3])
flush()
if r == nil then
  return fail('RESERVATION_NOT_FOUND')
end
return ok(r)
