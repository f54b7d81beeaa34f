-- get_account.lua (after lib.lua): no arguments of its own.
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
flush()
return ok(S.a.account)
