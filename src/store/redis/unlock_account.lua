-- unlock_account.lua (standalone): ends a rebuild that was abandoned, leaving the account as it was.
-- KEYS[1] the account record.
local raw = redis.call('GET', KEYS[1])
if not raw then
  return 0
end
local a = cmsgpack.unpack(raw)
if not a.rebuilding then
  return 0
end
if a.seq == nil then
  redis.call('DEL', KEYS[1])
  return 1
end
a.rebuilding = nil
redis.call('SET', KEYS[1], cmsgpack.pack(a))
return 1
