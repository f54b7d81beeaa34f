-- settle.lua (after lib.lua): settles the account's due holds (the reaper calls it); returns the
-- number of events it produced. When there was nothing to settle, it also mends the account's
-- entry in the shard's due set, so a stale entry cannot keep the reaper busy.
if not open_account() then
  redis.call('ZREM', K_DUE, ACCOUNT_ID)
  return ok(0)
end
if #S.events == 0 then
  local first = redis.call('ZRANGE', K_EXPIRY, 0, 0, 'WITHSCORES')
  if first[1] then
    redis.call('ZADD', K_DUE, first[2], ACCOUNT_ID)
  else
    redis.call('ZREM', K_DUE, ACCOUNT_ID)
  end
end
flush()
return ok(#S.events)
