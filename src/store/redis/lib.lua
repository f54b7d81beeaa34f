-- lib.lua: the shared part of every account script. creditd prepends it to each operation's file
-- (reserve.lua, commit.lua, ...) and loads the result by SHA. It mirrors src/model/account.rs step
-- for step; the property test holds the two to identical answers.
--
-- KEYS (the same for every account script; all share the shard's hash tag):
--   KEYS[1] account state (string, msgpack)
--   KEYS[2] grants (hash: grant id -> msgpack)
--   KEYS[3] reservations (hash: reservation id -> msgpack)
--   KEYS[4] the account's held reservations by expiry (zset: reservation id -> expires_at ms)
--   KEYS[5] the shard's accounts with holds, by earliest expiry (zset: account id -> ms)
--   KEYS[6] the shard's event stream
--   KEYS[7] the shard's test clock (string, ms; absent = Redis TIME)
-- ARGV (common):
--   ARGV[1] account id
--   ARGV[2] approximate MAXLEN of the event stream
--   ARGV[3..] the operation's own arguments (see each file's header)
--
-- Amounts are integers below 2^53 held in Lua doubles, so every sum stays exact; numbers are turned
-- into strings with fmt() (never tostring(), which rounds to 14 digits) before they reach Redis.
-- Nothing is written until the operation has decided: the state is changed in Lua tables and
-- written by flush() at the end, and only when an event was produced.

local MAX = 9007199254740991
local OVERAGE, DEBT = '@overage', '@debt'
local K_ACCOUNT, K_GRANTS, K_RES, K_EXPIRY, K_DUE, K_EVENTS, K_CLOCK =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local ACCOUNT_ID = ARGV[1]
local MAXLEN = ARGV[2]

local function fmt(n)
  return string.format('%d', n)
end

-- Micro-credits as whole credits with decimals, trailing zeros trimmed (model::credits).
local function credits(n)
  local q = math.floor(n / 1000000)
  local r = n - q * 1000000
  if r < 0 then
    q, r = q - 1, r + 1000000
  elseif r >= 1000000 then
    q, r = q + 1, r - 1000000
  end
  if r == 0 then
    return fmt(q)
  end
  local frac = string.gsub(string.format('%06d', r), '0+$', '')
  return fmt(q) .. '.' .. frac
end

local function clock()
  local frozen = redis.call('GET', K_CLOCK)
  if frozen then
    return tonumber(frozen)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local NOW = clock()

local function ok(value)
  return cmsgpack.pack({ok = value})
end

local function fail(reason, field, detail)
  return cmsgpack.pack({err = reason, field = field or '', detail = detail or ''})
end

local function arg_int(i)
  return tonumber(ARGV[i])
end

local function arg_opt_int(i)
  if ARGV[i] == '' then
    return nil
  end
  return tonumber(ARGV[i])
end

-- ---- state ------------------------------------------------------------------------------------

local S = {a = nil, grants = {}, dirty_grants = {}, res = {}, dirty_res = {}, events = {}}

local function load_account()
  local raw = redis.call('GET', K_ACCOUNT)
  if not raw then
    return false
  end
  S.a = cmsgpack.unpack(raw)
  local flat = redis.call('HGETALL', K_GRANTS)
  for i = 1, #flat, 2 do
    S.grants[flat[i]] = cmsgpack.unpack(flat[i + 1])
  end
  return true
end

local function touch_grant(g)
  S.dirty_grants[g.grant_id] = true
end

local function get_res(id)
  local r = S.res[id]
  if r == nil then
    local raw = redis.call('HGET', K_RES, id)
    if not raw then
      return nil
    end
    r = cmsgpack.unpack(raw)
    S.res[id] = r
  end
  return r
end

local function put_res(r)
  S.res[r.reservation_id] = r
  S.dirty_res[r.reservation_id] = true
end

local function new_event(kind)
  S.a.seq = S.a.seq + 1
  local ev = {
    account_id = ACCOUNT_ID, seq = S.a.seq, kind = kind, at = NOW,
    reservation_id = '', subject_id = '', labels = {}, moves = {}, cost = 0, detail = '',
  }
  table.insert(S.events, ev)
  return ev
end

local function reservation_event(kind, r)
  local ev = new_event(kind)
  ev.reservation_id = r.reservation_id
  ev.subject_id = r.subject_id
  ev.labels = r.labels
  return ev
end

local function move(ev, grant_id, from, to, amount)
  if amount > 0 then
    table.insert(ev.moves, {grant_id = grant_id, from = from, to = to, amount = amount})
  end
end

-- Writes what changed, keeps the expiry indexes right and appends the events. Nothing is written
-- when nothing happened.
local function flush()
  if #S.events == 0 then
    return
  end
  redis.call('SET', K_ACCOUNT, cmsgpack.pack(S.a))
  for id in pairs(S.dirty_grants) do
    redis.call('HSET', K_GRANTS, id, cmsgpack.pack(S.grants[id]))
  end
  for id in pairs(S.dirty_res) do
    local r = S.res[id]
    redis.call('HSET', K_RES, id, cmsgpack.pack(r))
    if r.state == 'HELD' then
      redis.call('ZADD', K_EXPIRY, fmt(r.expires_at), id)
    else
      redis.call('ZREM', K_EXPIRY, id)
    end
  end
  local first = redis.call('ZRANGE', K_EXPIRY, 0, 0, 'WITHSCORES')
  if first[1] then
    redis.call('ZADD', K_DUE, first[2], ACCOUNT_ID)
  else
    redis.call('ZREM', K_DUE, ACCOUNT_ID)
  end
  for _, ev in ipairs(S.events) do
    redis.call('XADD', K_EVENTS, 'MAXLEN', '~', MAXLEN, '*',
      'account', ACCOUNT_ID, 'seq', fmt(ev.seq), 'kind', ev.kind, 'at', fmt(ev.at),
      'body', cmsgpack.pack(ev))
  end
end

-- ---- billing periods (src/model/period.rs) ------------------------------------------------------

local DAY_MS = 86400000

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m
  if mp < 10 then m = mp + 3 else m = mp - 9 end
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function period_start_in(y, m, anchor_day)
  local ny, nm = y, m + 1
  if m == 12 then ny, nm = y + 1, 1 end
  local dim = days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)
  return days_from_civil(y, m, math.min(anchor_day, dim)) * DAY_MS
end

local function period_bounds(anchor, now)
  local _, _, anchor_day = civil_from_days(math.floor(anchor / DAY_MS))
  local y, m = civil_from_days(math.floor(now / DAY_MS))
  local py, pm, ny, nm = y, m - 1, y, m + 1
  if m == 1 then py, pm = y - 1, 12 end
  if m == 12 then ny, nm = y + 1, 1 end
  local this = period_start_in(y, m, anchor_day)
  if now >= this then
    return this, period_start_in(ny, nm, anchor_day)
  end
  return period_start_in(py, pm, anchor_day), this
end

-- ---- grants and balances ------------------------------------------------------------------------

local function grant_state(g)
  if g.is_voided then return 'VOIDED' end
  if g.closed or (g.expires_at ~= nil and g.expires_at <= NOW) then return 'EXPIRED' end
  if g.effective_at > NOW then return 'PENDING' end
  return 'ACTIVE'
end

-- Live grants in drawdown order: lowest priority number, soonest expiry, oldest.
local function drawdown()
  local live = {}
  for _, g in pairs(S.grants) do
    if grant_state(g) == 'ACTIVE' then
      table.insert(live, g)
    end
  end
  table.sort(live, function(x, y)
    if x.priority ~= y.priority then return x.priority < y.priority end
    local ex, ey = x.expires_at or math.huge, y.expires_at or math.huge
    if ex ~= ey then return ex < ey end
    return x.created_seq < y.created_seq
  end)
  return live
end

local function free_credits()
  local free = 0
  for _, g in pairs(S.grants) do
    if grant_state(g) == 'ACTIVE' then
      free = free + g.remaining
    end
  end
  return free
end

local function overage_room()
  local acc = S.a.account
  if not acc.overage_enabled then
    return 0
  end
  local limit = MAX
  if acc.overage_cap > 0 then
    limit = acc.overage_cap
  end
  return math.max(limit - S.a.overage_used - S.a.overage_held, 0)
end

local function balance()
  local grants, free, live_held, all_held = {}, 0, 0, 0
  for i, g in ipairs(drawdown()) do
    grants[i] = {
      grant_id = g.grant_id, kind = g.kind, remaining = g.remaining, held = g.held,
      priority = g.priority, expires_at = g.expires_at,
    }
    free = free + g.remaining
    live_held = live_held + g.held
  end
  for _, g in pairs(S.grants) do
    all_held = all_held + g.held
  end
  local a = S.a
  return {
    account_id = ACCOUNT_ID,
    available = math.min(free + overage_room(), MAX) - a.debt,
    held = all_held + a.overage_held,
    granted_remaining = free + live_held,
    debt = a.debt,
    overage_enabled = a.account.overage_enabled,
    overage_used = a.overage_used,
    overage_held = a.overage_held,
    overage_cap = a.account.overage_cap,
    overage_spent_total = a.overage_total,
    period_start = a.period_start,
    period_end = a.period_end,
    sequence = a.seq,
    grants = grants,
  }
end

-- How much of amount (at least min_amount when non-zero) can be held now: returns the amount, or
-- nil with a denial reason and detail.
local function spendable(amount, min_amount)
  local acc = S.a.account
  if acc.suspended then
    return nil, 'ACCOUNT_SUSPENDED', 'the account is suspended'
  end
  if S.a.debt > 0 then
    return nil, 'DEBT_OUTSTANDING', 'the account owes ' .. credits(S.a.debt) .. ' credits'
  end
  local total = free_credits() + overage_room()
  if total >= amount then
    return amount
  end
  if min_amount > 0 and total >= min_amount then
    return total
  end
  local reason = 'INSUFFICIENT_CREDITS'
  if acc.overage_enabled and acc.overage_cap > 0 then
    reason = 'OVERAGE_CAP_REACHED'
  end
  return nil, reason, 'needs ' .. credits(amount) .. ' credits, ' .. credits(total) .. ' available'
end

-- Returns everything r still holds: a live grant gets it back, an expired or voided grant books
-- it as expired or voided, overage gets its room back.
local function release_holds(r, ev)
  local total = 0
  for _, al in ipairs(r.allocations) do
    if al.held > 0 then
      local amount = al.held
      al.held = 0
      total = total + amount
      if al.grant_id == OVERAGE then
        S.a.overage_held = S.a.overage_held - amount
        move(ev, OVERAGE, 'held', 'overage', amount)
      else
        local g = S.grants[al.grant_id]
        g.held = g.held - amount
        local st, to = grant_state(g), 'available'
        if st == 'VOIDED' then
          g.voided = g.voided + amount
          to = 'voided'
        elseif st == 'EXPIRED' then
          g.expired = g.expired + amount
          to = 'expired'
        else
          g.remaining = g.remaining + amount
        end
        touch_grant(g)
        move(ev, al.grant_id, 'held', to, amount)
      end
    end
  end
  r.held = 0
  return total
end

-- Brings the account up to NOW: a new billing period, expired grants, expired holds.
local function settle()
  local a = S.a
  if NOW >= a.period_end then
    a.period_start, a.period_end = period_bounds(a.account.billing_anchor, NOW)
    a.overage_used = 0
    new_event('period_started')
  end

  local expiring = {}
  for _, g in pairs(S.grants) do
    if not g.closed and not g.is_voided and g.expires_at ~= nil and g.expires_at <= NOW then
      table.insert(expiring, g)
    end
  end
  table.sort(expiring, function(x, y)
    if x.expires_at ~= y.expires_at then return x.expires_at < y.expires_at end
    return x.created_seq < y.created_seq
  end)
  for _, g in ipairs(expiring) do
    local ev = new_event('grant_expired')
    local amount = g.remaining
    g.remaining = 0
    g.expired = g.expired + amount
    g.closed = true
    touch_grant(g)
    ev.detail = g.grant_id
    move(ev, g.grant_id, 'available', 'expired', amount)
  end

  local due = redis.call('ZRANGEBYSCORE', K_EXPIRY, '-inf', fmt(NOW))
  for _, id in ipairs(due) do
    local r = get_res(id)
    if r ~= nil and r.state == 'HELD' then
      local ev = reservation_event('hold_expired', r)
      release_holds(r, ev)
      r.state = 'EXPIRED'
      put_res(r)
    end
  end
end

-- Loads and settles the account; false when it does not exist.
local function open_account()
  if not load_account() then
    return false
  end
  settle()
  return true
end
