-- settle.lua (after lib.lua): settles the account's due holds (the reaper calls it); returns the
-- number of events it produced.
if not open_account() then
  return ok(0)
end
flush()
return ok(#S.events)
