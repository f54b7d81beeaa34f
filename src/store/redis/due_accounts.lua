-- due_accounts.lua (standalone, not after lib.lua): the accounts of one shard with a hold due now.
-- KEYS[1] the shard's due zset, KEYS[2] the shard's test clock
-- ARGV[1] the most accounts to return
local frozen = redis.call('GET', KEYS[2])
local now
if frozen then
  now = tonumber(frozen)
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now), 'LIMIT', 0, tonumber(ARGV[1]))
