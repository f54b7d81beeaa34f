-- list_grants.lua (after lib.lua): every grant, in creation order.
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local all = {}
for _, g in pairs(S.grants) do
  table.insert(all, g)
end
table.sort(all, function(x, y) return x.created_seq < y.created_seq end)
flush()
return ok(all)
