-- lib.lua: the shared part of every account script. It mirrors src/model/account.rs step for
-- step; the property test holds the two to identical answers.
--
-- creditd loads lib.lua and every operation's file (reserve.lua, commit.lua, ...) as ONE Redis
-- function library (src/store/redis/library.rs): each operation becomes a function whose body is
-- its file, called with FCALL. lib's helpers are therefore defined once, when Redis loads the
-- library, and not at every call as in an EVALSHA script; each call starts with begin(keys,
-- args), which sets the call's keys, arguments, clock and state below. (As EVALSHA scripts the
-- same code spent 6-7 us of each call re-creating lib's ~75 functions and collecting them:
-- BENCHMARKS.md, "What moved the figures".) Redis runs one function at a time, so these
-- per-call variables are never shared by two calls.
--
-- KEYS (the same for every account script; all share the shard's hash tag):
--   KEYS[1] account state (string, msgpack)
--   KEYS[2] grants (hash: grant id -> msgpack): the open ones, and closed ones still holding credits
--   KEYS[3] reservations (hash: reservation id -> msgpack)
--   KEYS[4] the account's held reservations by expiry (zset: reservation id -> expires_at ms)
--   KEYS[5] the shard's accounts with holds, by earliest expiry (zset: account id -> ms)
--   KEYS[6] the shard's event stream
--   KEYS[7] the shard's test clock (string, ms; absent = Redis TIME)
--   KEYS[8] subject policies (hash: subject id or '*' -> msgpack)
--   KEYS[9] usage counters of budgets and frequency caps (hash: key -> msgpack {window, used})
--   KEYS[10] closed grants (hash: grant id -> msgpack): expired or voided, holding nothing. flush()
--            moves a grant here once it is final, so that a call reads only the grants that can
--            still change: an account's cost per call does not grow with its history of grants.
-- ARGV (common):
--   ARGV[1] account id
--   ARGV[2] the rate card's plans, msgpack {plan id -> allowance} ('' = none)
-- Each operation's own arguments start at ARGV[3] (see each file's header).
--
-- The event stream: each call that changed anything appends ONE entry, the unit the ledger
-- applies atomically: `account`, `seq` (the account's sequence number after the call), `events`
-- (msgpack array of the call's events, in order) and `state` (msgpack {a = account, g = {grant id
-- -> grant}, r = {reservation id -> reservation}, u = {counter -> usage}, p = {subject -> policy}}:
-- the records the call wrote, as written). The ledger keeps the latest of each record, so that an
-- account lost by Redis can be written back exactly as it was (src/ledger/rebuild.rs).
-- The stream is never capped here: the reconciler trims it below its oldest unacknowledged entry.
--
-- Amounts are integers below 2^53 held in Lua doubles, so every sum stays exact; numbers are turned
-- into strings with fmt() (never tostring(), which rounds to 14 digits) before they reach Redis.
-- Nothing is written until the operation has decided: the state is changed in Lua tables and
-- written by flush() at the end, and only when an event was produced.

local MAX = 9007199254740991
local OVERAGE, DEBT = '@overage', '@debt'
-- The call's arguments (operations read their own as ARGV[3], ...) and keys, set by begin().
local ARGV
local K_ACCOUNT, K_GRANTS, K_RES, K_EXPIRY, K_DUE, K_EVENTS, K_CLOCK, K_POLICIES, K_USAGE, K_CLOSED
local ACCOUNT_ID
local PLANS
-- The call's time (ms) and the account's state as the call changes it (see begin()).
local NOW
local S
-- The error an account script raises while the account is being rebuilt from the ledger (the
-- store maps it to UNAVAILABLE / STORE_UNAVAILABLE): the account fails closed.
local REBUILDING = 'CREDITD_REBUILDING account is being rebuilt from the ledger'
local DAY_MS = 86400000
local DEFAULT_THRESHOLDS = {10000000000, 5000000000, 1000000000, 0}
local DEFAULT_ALLOWANCE_ALERT_PERCENT = 75

local function fmt(n)
  return string.format('%d', n)
end

-- q, r with n = q * d + r and 0 <= r < d, exact for |n| < 2^53 (a plain floor(n / d) can round up).
local function divmod(n, d)
  local q = math.floor(n / d)
  local r = n - q * d
  if r < 0 then
    q, r = q - 1, r + d
  elseif r >= d then
    q, r = q + 1, r - d
  end
  return q, r
end

-- Micro-credits as whole credits with decimals, trailing zeros trimmed (model::credits).
local function credits(n)
  local q, r = divmod(n, 1000000)
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

-- Every operation's first step: the call's keys and arguments, the clock read once, and an empty
-- state (filled by load_account(), written by flush()).
local function begin(keys, args)
  ARGV = args
  K_ACCOUNT, K_GRANTS, K_RES, K_EXPIRY, K_DUE, K_EVENTS, K_CLOCK, K_POLICIES, K_USAGE, K_CLOSED =
    keys[1], keys[2], keys[3], keys[4], keys[5], keys[6], keys[7], keys[8], keys[9], keys[10]
  ACCOUNT_ID = args[1]
  PLANS = {}
  if args[2] ~= '' then
    PLANS = cmsgpack.unpack(args[2])
  end
  NOW = clock()
  S = {
    a = nil, grants = {}, dirty_grants = {}, res = {}, dirty_res = {}, events = {},
    policies = {}, dirty_policies = {}, usage = {}, dirty_usage = {},
  }
end

-- A grant that nothing can change any more: expired (closed) or voided, and holding nothing.
local function is_final(g)
  return (g.closed or g.is_voided) and g.held == 0
end

local function load_account()
  local raw = redis.call('GET', K_ACCOUNT)
  if not raw then
    return false
  end
  S.a = cmsgpack.unpack(raw)
  if S.a.rebuilding then
    error({err = REBUILDING})
  end
  S.a.fired = S.a.fired or {}
  local flat = redis.call('HGETALL', K_GRANTS)
  for i = 1, #flat, 2 do
    local g = cmsgpack.unpack(flat[i + 1])
    S.grants[flat[i]] = g
    if is_final(g) then
      -- Written before closed grants were moved out: the next flush moves it.
      S.dirty_grants[g.grant_id] = true
    end
  end
  return true
end

local function touch_grant(g)
  S.dirty_grants[g.grant_id] = true
end

-- A grant by id, open or closed, or nil (for replays and ListGrants; the balance and every
-- drawdown need only S.grants).
local function find_grant(id)
  local g = S.grants[id]
  if g == nil then
    local raw = redis.call('HGET', K_CLOSED, id)
    if raw then g = cmsgpack.unpack(raw) end
  end
  return g
end

-- Every grant of the account, open and closed, in creation order.
local function all_grants()
  local all = {}
  for _, g in pairs(S.grants) do
    all[#all + 1] = g
  end
  local flat = redis.call('HGETALL', K_CLOSED)
  for i = 2, #flat, 2 do
    all[#all + 1] = cmsgpack.unpack(flat[i])
  end
  table.sort(all, function(x, y) return x.created_seq < y.created_seq end)
  return all
end

-- A field of a hash of msgpack values, read once per script and kept in `cache` (false when
-- absent, so that a miss is not read again).
local function cached(cache, key, field)
  local v = cache[field]
  if v == nil then
    local raw = redis.call('HGET', key, field)
    if raw then v = cmsgpack.unpack(raw) else v = false end
    cache[field] = v
  end
  return v
end

-- A reservation, or nil.
local function get_res(id)
  return cached(S.res, K_RES, id) or nil
end

local function put_res(r)
  S.res[r.reservation_id] = r
  S.dirty_res[r.reservation_id] = true
end

-- A subject's policy, or false when it has none.
local function get_policy(subject)
  return cached(S.policies, K_POLICIES, subject)
end

-- A usage counter {window, used}, or false.
local function usage_get(key)
  return cached(S.usage, K_USAGE, key)
end

local function counter(key, window)
  local c = usage_get(key)
  if c and c.window == window then
    return c.used
  end
  return 0
end

local function usage_set(key, window, used)
  S.usage[key] = {window = window, used = used}
  S.dirty_usage[key] = true
end

local function add_usage(key, window, delta)
  local c = usage_get(key)
  if not c or c.window ~= window then
    c = {window = window, used = 0}
  end
  usage_set(key, window, c.used + delta)
end

-- A shallow copy, for the audit trail's "before" and "after".
local function copy(t)
  local c = {}
  for k, v in pairs(t) do
    c[k] = v
  end
  return c
end

local function new_event(kind)
  S.a.seq = S.a.seq + 1
  local ev = {
    account_id = ACCOUNT_ID, seq = S.a.seq, kind = kind, at = NOW,
    reservation_id = '', subject_id = '', labels = {}, moves = {}, cost = 0, detail = '',
    actor = '', items = {},
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

-- ---- billing periods (src/model/period.rs) ------------------------------------------------------

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

-- Live grants in drawdown order: lowest priority number, soonest expiry, oldest. Sorted once per
-- script and kept in S.live: the order is fixed per grant and NOW is fixed per script, so only a
-- grant added or voided changes the list (both call forget_live()). With many grants the sort
-- was the costliest step, and a script used to redo it three times (BENCHMARKS.md, Scale).
local function drawdown()
  if S.live then
    return S.live
  end
  local live = {}
  for _, g in pairs(S.grants) do
    if grant_state(g) == 'ACTIVE' then
      live[#live + 1] = g
    end
  end
  table.sort(live, function(x, y)
    if x.priority ~= y.priority then return x.priority < y.priority end
    local ex, ey = x.expires_at or math.huge, y.expires_at or math.huge
    if ex ~= ey then return ex < ey end
    return x.created_seq < y.created_seq
  end)
  S.live = live
  return live
end

local function forget_live()
  S.live = nil
end

local function free_credits()
  local free = 0
  for _, g in ipairs(drawdown()) do
    free = free + g.remaining
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

-- Spendable now: live grants' remaining plus overage room, less debt (balance().available).
local function available_credits()
  return math.min(free_credits() + overage_room(), MAX) - S.a.debt
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

-- How much of amount (at least min_amount when non-zero) the credits cover: the amount, or nil
-- with a denial reason and detail (model AccountState::credit_room).
local function spendable(amount, min_amount)
  local acc = S.a.account
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

-- A new grant (already validated): its event, and debt paid first. Returns the grant.
local function add_grant(id, kind, amount, priority, effective_at, expires_at, unit_price, actor)
  local ev = new_event('grant_created')
  local g = {
    grant_id = id, kind = kind, amount = amount, remaining = amount, held = 0, spent = 0,
    expired = 0, voided = 0, priority = priority, effective_at = effective_at,
    expires_at = expires_at, unit_price = unit_price, created_at = NOW, created_seq = S.a.seq,
    closed = false, is_voided = false,
  }
  ev.detail = id
  move(ev, id, 'issued', 'available', amount)
  local pay = math.min(S.a.debt, amount)
  if pay > 0 then
    g.remaining = g.remaining - pay
    g.spent = g.spent + pay
    S.a.debt = S.a.debt - pay
    move(ev, id, 'available', 'debt_paid', pay)
  end
  ev.actor = actor
  ev.after = copy(g)
  S.grants[id] = g
  forget_live()
  touch_grant(g)
  return g
end

-- The UTC date of a time, YYYY-MM-DD (model::period::date).
local function date(t)
  local y, m, d = civil_from_days(divmod(t, DAY_MS))
  return string.format('%04d-%02d-%02d', y, m, d)
end

-- The plan's allowance for the current period, expiring at its end.
local function issue_allowance()
  local amount = PLANS[S.a.account.plan_id]
  if amount == nil then
    return
  end
  local id = 'allowance-' .. date(S.a.period_start)
  if amount > 0 and find_grant(id) == nil then
    add_grant(id, 'ALLOWANCE', amount, 10, S.a.period_start, S.a.period_end, 0, '')
  end
end

-- Gives back the free units a hold took and no capture used (same period only).
local function return_free_units(r)
  for _, l in ipairs(r.lines or {}) do
    if l.free_left > 0 then
      local key = 'f|' .. l.sku
      local u = usage_get(key)
      if u and u.window == r.free_window then
        usage_set(key, u.window, u.used - l.free_left)
      end
      l.free_left = 0
    end
  end
end

-- Brings the budget counters in line with what the hold still holds or has charged.
local function adjust_budgets(r)
  local exposure = r.held + r.committed
  for _, c in ipairs(r.budget_charges or {}) do
    local target = exposure
    if c.fixed then
      target = math.min(c.amount, exposure)
    end
    local delta = target - c.amount
    if delta ~= 0 then
      local u = usage_get(c.key)
      if u and u.window == c.window then
        usage_set(c.key, u.window, u.used + delta)
      end
      c.amount = target
    end
  end
end

-- Brings the account up to NOW: a new billing period, expired grants, expired holds.
local function settle()
  local a = S.a

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

  if NOW >= a.period_end then
    a.period_start, a.period_end = period_bounds(a.account.billing_anchor, NOW)
    a.overage_used = 0
    a.fired['allowance'] = nil
    a.fired['overage_cap'] = nil
    new_event('period_started')
    issue_allowance()
  end

  local due = redis.call('ZRANGEBYSCORE', K_EXPIRY, '-inf', fmt(NOW))
  for _, id in ipairs(due) do
    local r = get_res(id)
    if r ~= nil and r.state == 'HELD' then
      local ev = reservation_event('hold_expired', r)
      release_holds(r, ev)
      adjust_budgets(r)
      return_free_units(r)
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

-- ---- policies: spending rights, frequency caps, budgets (src/model/enforce.rs) ---------------------

local function who(owner)
  if owner == '*' then
    return 'the account'
  end
  return 'subject ' .. owner
end

local function policy_owners(subject)
  local owners = {}
  if subject ~= '*' and get_policy(subject) then
    table.insert(owners, subject)
  end
  if get_policy('*') then
    table.insert(owners, '*')
  end
  return owners
end

local function may_spend(subject)
  local p = get_policy(subject) or get_policy('*')
  if p and not p.spending_enabled then
    return nil, 'SPENDING_DISABLED', "spending is disabled for subject '" .. subject .. "'"
  end
  return true
end

local function rate_counts(owners, skus)
  local out = {}
  for _, owner in ipairs(owners) do
    for _, rl in ipairs(get_policy(owner).rate_limits) do
      local q = 0
      if rl.sku == '*' then
        q = 1
      else
        for _, l in ipairs(skus) do
          if l[1] == rl.sku then q = q + l[2] end
        end
      end
      if q > 0 then
        local span = rl.window_seconds * 1000
        local _, into = divmod(NOW, span)
        local window = NOW - into
        local key = 'r|' .. owner .. '|' .. rl.sku .. '|' .. fmt(rl.window_seconds)
        local used = counter(key, window)
        if used + q > rl.max_count then
          local wait = math.floor((window + span - NOW + 999) / 1000)
          return nil, 'RATE_LIMITED', who(owner) .. ' may use ' .. fmt(rl.max_count) .. ' ' .. rl.sku
            .. ' per ' .. fmt(rl.window_seconds) .. ' s; retry in ' .. fmt(wait) .. ' s', window + span
        end
        table.insert(out, {key, window, used + q})
      end
    end
  end
  return out
end

-- What a budget scope counts of a hold: amount (and whether it is a fixed SKU share), or nil.
local function scope_amount(scope, amount, labels, skus)
  if scope == '' or scope == 'subject' then
    return amount, false
  end
  if string.sub(scope, 1, 6) == 'label:' then
    local kv = string.sub(scope, 7)
    local eq = string.find(kv, '=', 1, true)
    if not eq then return nil end
    if labels[string.sub(kv, 1, eq - 1)] == string.sub(kv, eq + 1) then
      return amount, false
    end
    return nil
  end
  if string.sub(scope, 1, 4) == 'sku:' then
    local sku, share, found = string.sub(scope, 5), 0, false
    for _, l in ipairs(skus) do
      if l[1] == sku then share, found = share + l[3], true end
    end
    if found then return share, true end
  end
  return nil
end

-- A budget's counter key and current window (model::policy::budget_key / budget_window).
local function budget_counter(owner, b)
  local window, period = S.a.period_start, 'period'
  if b.period == 'DAY' then
    local _, into = divmod(NOW, DAY_MS)
    window, period = NOW - into, 'day'
  end
  return 'b|' .. owner .. '|' .. b.scope .. '|' .. period, window
end

-- The budgets that apply to a subject, with what they have used (AccountState::subject_budgets).
local function subject_budgets(subject)
  local out = {}
  for _, owner in ipairs(policy_owners(subject)) do
    for _, b in ipairs(get_policy(owner).budgets) do
      local key, window = budget_counter(owner, b)
      table.insert(out, {owner = owner, scope = b.scope, period = b.period, limit = b.limit,
        used = counter(key, window)})
    end
  end
  return out
end

local function budget_charges(owners, amount, labels, skus)
  local out = {}
  for _, owner in ipairs(owners) do
    for _, b in ipairs(get_policy(owner).budgets) do
      local share, fixed = scope_amount(b.scope, amount, labels, skus)
      if share ~= nil then
        local key, window = budget_counter(owner, b)
        local used = counter(key, window)
        if used + share > b.limit then
          return nil, 'BUDGET_LIMIT_REACHED', 'budget ' .. key .. ' of ' .. who(owner) .. ': '
            .. credits(math.max(b.limit - used, 0)) .. ' of ' .. credits(b.limit) .. ' credits left'
        end
        table.insert(out, {key = key, window = window, amount = share, fixed = fixed})
      end
    end
  end
  return out
end

-- A suspended account spends nothing; one in debt spends nothing that costs credits.
local function account_open(amount)
  if S.a.account.suspended then
    return nil, 'ACCOUNT_SUSPENDED', 'the account is suspended'
  end
  if S.a.debt > 0 and amount > 0 then
    return nil, 'DEBT_OUTSTANDING', 'the account owes ' .. credits(S.a.debt) .. ' credits'
  end
  return true
end

-- Every check of a reserve, in order (model AccountState::decide): returns the amount to hold,
-- the rate counters and the budget charges; or nil, reason, detail, retry time.
local function decide(subject, amount, min_amount, labels, skus)
  local okay, reason, detail = account_open(amount)
  if not okay then return nil, reason, detail end
  okay, reason, detail = may_spend(subject)
  if not okay then return nil, reason, detail end
  local owners = policy_owners(subject)
  local rates, retry_at
  rates, reason, detail, retry_at = rate_counts(owners, skus)
  if not rates then return nil, reason, detail, retry_at end
  local want
  want, reason, detail = spendable(amount, min_amount)
  if not want then return nil, reason, detail end
  local charges
  charges, reason, detail = budget_charges(owners, want, labels, skus)
  if not charges then return nil, reason, detail end
  return want, rates, charges
end

-- ---- priced lines (src/model/enforce.rs, model::line_amount) ------------------------------------

-- What units cost at num / den micro-credits each, rounded down, exactly (den is a power of ten
-- and the rate card keeps num * den and every line amount below 2^53).
local function line_amount(units, num, den)
  if den == 1 then
    return units * num
  end
  local a, b = divmod(units, den)
  local c = divmod(b * num, den)
  return a * num + c
end

-- Prices lines against the period's free units: the held lines and their total.
local function price_lines(lines)
  local taken, held, total = {}, {}, 0
  for _, l in ipairs(lines) do
    local before = taken[l.sku] or 0
    local used = counter('f|' .. l.sku, S.a.period_start) + before
    local applied = math.min(l.quantity, math.max(l.free_per_period - used, 0))
    taken[l.sku] = before + applied
    local amount = line_amount(l.quantity - applied, l.price_num, l.price_den)
    table.insert(held, {
      sku = l.sku, quantity = l.quantity, price_num = l.price_num, price_den = l.price_den,
      free_applied = applied, free_left = applied, amount = amount,
    })
    total = total + amount
  end
  return held, total
end

-- A plain amount, or the total of priced lines after free units.
local function priced(amount, lines)
  if #lines == 0 then
    return {}, amount
  end
  return price_lines(lines)
end

local function skus_of(held)
  local out = {}
  for _, l in ipairs(held) do
    table.insert(out, {l.sku, l.quantity, l.amount})
  end
  return out
end

local function take_free_units(r)
  for _, l in ipairs(r.lines) do
    if l.free_applied > 0 then
      add_usage('f|' .. l.sku, r.free_window, l.free_applied)
    end
  end
end

local function arg_json(i)
  if ARGV[i] == '' then
    return {}
  end
  return cjson.decode(ARGV[i])
end

-- ---- alerts (src/model/enforce.rs) --------------------------------------------------------------

local function levels()
  local t = S.a.account.thresholds
  if t == nil or #t == 0 then
    return DEFAULT_THRESHOLDS
  end
  return t
end

-- Marks the levels already crossed at creation, so a new account does not announce them.
local function arm_alerts()
  local available = available_credits()
  for _, level in ipairs(levels()) do
    if available <= level then
      S.a.fired['level:' .. fmt(level)] = true
    end
  end
end

local function alert(key, kind, detail)
  if not S.a.fired[key] then
    S.a.fired[key] = true
    local ev = new_event(kind)
    ev.detail = detail
  end
end

local function check_alerts()
  local a = S.a
  local available = available_credits()
  for _, level in ipairs(levels()) do
    local key = 'level:' .. fmt(level)
    if available <= level then
      alert(key, 'threshold_crossed', fmt(level))
    else
      a.fired[key] = nil
    end
  end

  local total, used = 0, 0
  for _, g in ipairs(drawdown()) do
    if g.kind == 'ALLOWANCE' then
      total = total + g.amount
      used = used + g.amount - g.remaining
    end
  end
  local percent = a.account.allowance_alert_percent or 0
  if percent == 0 then percent = DEFAULT_ALLOWANCE_ALERT_PERCENT end
  local q, r = divmod(total, 100)
  local mark = q * percent + math.floor((r * percent + 99) / 100)
  if total > 0 and used >= mark then
    alert('allowance', 'allowance_used', fmt(percent))
  end

  local acc = a.account
  if acc.overage_enabled and acc.overage_cap > 0 and a.overage_used + a.overage_held >= acc.overage_cap then
    alert('overage_cap', 'overage_cap_reached', '')
  end

  if a.debt > 0 then
    alert('debt', 'debt_incurred', fmt(a.debt))
  else
    a.fired['debt'] = nil
  end

  if (acc.top_up_amount or 0) > 0 and available <= acc.top_up_threshold then
    alert('top_up', 'top_up_requested', fmt(acc.top_up_amount))
  else
    a.fired['top_up'] = nil
  end
end

-- ---- writing -------------------------------------------------------------------------------------

-- When anything happened: fires the alerts it crossed, writes what changed, keeps the expiry
-- indexes right and appends the events. Nothing is written when nothing happened.
local function flush()
  if #S.events == 0 then
    return
  end
  check_alerts()
  local state = {a = cmsgpack.pack(S.a), g = {}, r = {}, u = {}, p = {}}
  redis.call('SET', K_ACCOUNT, state.a)
  for id in pairs(S.dirty_grants) do
    local g = S.grants[id]
    state.g[id] = cmsgpack.pack(g)
    if is_final(g) then
      redis.call('HDEL', K_GRANTS, id)
      redis.call('HSET', K_CLOSED, id, state.g[id])
    else
      redis.call('HSET', K_GRANTS, id, state.g[id])
    end
  end
  for id in pairs(S.dirty_res) do
    local r = S.res[id]
    state.r[id] = cmsgpack.pack(r)
    redis.call('HSET', K_RES, id, state.r[id])
    if r.state == 'HELD' then
      redis.call('ZADD', K_EXPIRY, fmt(r.expires_at), id)
    else
      redis.call('ZREM', K_EXPIRY, id)
    end
  end
  for key in pairs(S.dirty_usage) do
    state.u[key] = cmsgpack.pack(S.usage[key])
    redis.call('HSET', K_USAGE, key, state.u[key])
  end
  for subject in pairs(S.dirty_policies) do
    state.p[subject] = cmsgpack.pack(S.policies[subject])
    redis.call('HSET', K_POLICIES, subject, state.p[subject])
  end
  local first = redis.call('ZRANGE', K_EXPIRY, 0, 0, 'WITHSCORES')
  if first[1] then
    redis.call('ZADD', K_DUE, first[2], ACCOUNT_ID)
  else
    redis.call('ZREM', K_DUE, ACCOUNT_ID)
  end
  redis.call('XADD', K_EVENTS, '*', 'account', ACCOUNT_ID, 'seq', fmt(S.a.seq),
    'events', cmsgpack.pack(S.events), 'state', cmsgpack.pack(state))
end
