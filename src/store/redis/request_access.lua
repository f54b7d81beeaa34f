-- request_access.lua (after lib.lua): a subject asks for spending rights; an event tells the
-- account's admins. ARGV[3] subject id, ARGV[4] the subject's note
if not open_account() then
  return fail('ACCOUNT_NOT_FOUND')
end
local ev = new_event('spending_access_requested')
ev.subject_id = ARGV[3]
ev.detail = ARGV[4]
flush()
return ok(true)
