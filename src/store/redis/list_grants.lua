-- list_grants.lua (after lib.lua): every grant, in creation order.
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local all = all_grants()
flush()
return ok(all)
