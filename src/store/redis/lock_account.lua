-- lock_account.lua (standalone): marks an account as being rebuilt from the ledger; every account
-- script then refuses it (CREDITD_REBUILDING), so it fails closed until load_account.lua writes it
-- back. KEYS[1] the account record. ARGV[1] '1' = take over a lock left by a rebuild that died.
-- Returns the account's sequence number, or -1 when Redis does not hold the account.
local raw = redis.call('GET', KEYS[1])
if not raw then
  redis.call('SET', KEYS[1], cmsgpack.pack({rebuilding = true}))
  return -1
end
local a = cmsgpack.unpack(raw)
if a.rebuilding and ARGV[1] ~= '1' then
  return redis.error_reply('CREDITD_LOCKED the account is already being rebuilt (use --force to take over)')
end
if a.seq == nil then
  return -1
end
a.rebuilding = true
redis.call('SET', KEYS[1], cmsgpack.pack(a))
return a.seq
