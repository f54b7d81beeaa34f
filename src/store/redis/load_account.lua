-- load_account.lua (standalone): writes an account back from the ledger's records, replacing
-- whatever Redis holds of it, in one atomic step. KEYS: the ten account keys (see lib.lua).
-- ARGV[1] account id, ARGV[2] mode: 'locked' (a rebuild: the account must carry the rebuild mark)
-- or 'absent' (first use after Redis lost it: only when Redis does not hold the account),
-- ARGV[3] the account record, then four lists, each a count followed by (key, record) pairs:
-- grants, reservations, usage counters, subject policies.
-- Returns 1 when written, 0 when the mode's condition did not hold.
local account, mode = ARGV[1], ARGV[2]
local current = redis.call('GET', KEYS[1])
if mode == 'absent' and current then
  return 0
end
if mode == 'locked' and not (current and cmsgpack.unpack(current).rebuilding) then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[8], KEYS[9], KEYS[10])
redis.call('SET', KEYS[1], ARGV[3])
local i = 4
-- Writes each record into `key`, or into the key that place(record) names.
local function load(key, on_record, place)
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do
    redis.call('HSET', place and place(ARGV[i + 1]) or key, ARGV[i], ARGV[i + 1])
    if on_record then on_record(ARGV[i], ARGV[i + 1]) end
    i = i + 2
  end
end
-- A grant that is expired or voided and holds nothing goes with the closed grants (lib.lua).
load(KEYS[2], nil, function(raw)
  local g = cmsgpack.unpack(raw)
  if (g.closed or g.is_voided) and g.held == 0 then
    return KEYS[10]
  end
  return KEYS[2]
end)
load(KEYS[3], function(id, raw)
  local r = cmsgpack.unpack(raw)
  if r.state == 'HELD' then
    redis.call('ZADD', KEYS[4], string.format('%d', r.expires_at), id)
  end
end)
load(KEYS[9])
load(KEYS[8])
local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
if first[1] then
  redis.call('ZADD', KEYS[5], first[2], account)
else
  redis.call('ZREM', KEYS[5], account)
end
return 1
