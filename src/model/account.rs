//! One account's state and every operation on it: the reference semantics of creditd.
//!
//! `src/store/redis/*.lua` implement exactly the same steps in the same order; the property test
//! (`tests/model_vs_redis.rs`) holds them to identical answers, balances and events.

use std::collections::{BTreeMap, BTreeSet};

use super::event::{Audit, Event, ItemCharge};
use super::period;
use super::policy::*;
use super::types::*;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub account: Account,
    pub seq: i64,
    pub debt: Micros,
    pub overage_used: Micros,
    pub overage_held: Micros,
    pub overage_total: Micros,
    pub period_start: Millis,
    pub period_end: Millis,
    pub grants: BTreeMap<String, Grant>,
    pub reservations: BTreeMap<String, Reservation>,
    pub policies: BTreeMap<String, SubjectPolicy>,
    pub usage: BTreeMap<String, Counter>,
    /// Alerts fired and not re-armed yet.
    pub fired: BTreeSet<String>,
}

/// Plan id → the allowance it issues each billing period.
pub type Plans = BTreeMap<String, Micros>;

/// A refusal: the reason and a human sentence.
type Denial = (DenialReason, String);

/// What a reserve may hold and the usage counters it moves.
pub(super) struct Decision {
    pub want: Micros,
    pub rates: Vec<super::enforce::RateCount>,
    pub charges: Vec<BudgetCharge>,
}

impl AccountState {
    pub fn create(
        req: &CreateAccount,
        plans: &Plans,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Self {
        let anchor = req.billing_anchor.unwrap_or(now);
        let (period_start, period_end) = period::bounds(anchor, now);
        let mut state = AccountState {
            account: Account {
                account_id: req.account_id.clone(),
                parent_id: req.parent_id.clone(),
                plan_id: req.plan_id.clone(),
                billing_anchor: anchor,
                overage_enabled: req.overage_enabled,
                overage_cap: req.overage_cap,
                suspended: req.suspended,
                created_at: now,
                thresholds: Vec::new(),
                allowance_alert_percent: 0,
                top_up_threshold: 0,
                top_up_amount: 0,
            },
            seq: 0,
            debt: 0,
            overage_used: 0,
            overage_held: 0,
            overage_total: 0,
            period_start,
            period_end,
            grants: BTreeMap::new(),
            reservations: BTreeMap::new(),
            policies: BTreeMap::new(),
            usage: BTreeMap::new(),
            fired: BTreeSet::new(),
        };
        let mut ev = state.event("account_created", now);
        ev.actor = req.actor.clone();
        ev.after = Some(Audit::Account(state.account.clone()));
        events.push(ev);
        state.issue_allowance(plans, now, events);
        state.arm_alerts(now);
        state
    }

    /// Issues the plan's allowance for the current period, expiring at its end.
    fn issue_allowance(&mut self, plans: &Plans, now: Millis, events: &mut Vec<Event>) {
        let Some(&amount) = plans.get(&self.account.plan_id) else {
            return;
        };
        let req = CreateGrant {
            actor: String::new(),
            account_id: self.account.account_id.clone(),
            grant_id: format!("allowance-{}", period::date(self.period_start)),
            kind: GrantKind::Allowance,
            amount,
            priority: None,
            effective_at: Some(self.period_start),
            expires_at: Some(self.period_end),
            unit_price: 0,
        };
        if amount > 0 && !self.grants.contains_key(&req.grant_id) {
            // Cannot fail: a fresh id, an expiry after now, and plan amounts below 2^53.
            let _ = self.create_grant(&req, now, events);
        }
    }

    /// True when `req` asks for the account as it was created (a replay of CreateAccount).
    pub fn matches(&self, req: &CreateAccount) -> bool {
        let a = &self.account;
        a.parent_id == req.parent_id
            && a.plan_id == req.plan_id
            && a.overage_enabled == req.overage_enabled
            && a.overage_cap == req.overage_cap
            && a.suspended == req.suspended
            && req.billing_anchor.is_none_or(|t| t == a.billing_anchor)
    }

    pub(super) fn event(&mut self, kind: &str, now: Millis) -> Event {
        self.seq += 1;
        Event::new(&self.account.account_id, self.seq, kind, now)
    }

    fn reservation_event(&mut self, kind: &str, now: Millis, r: &Reservation) -> Event {
        let mut ev = self.event(kind, now);
        ev.reservation_id = r.reservation_id.clone();
        ev.subject_id = r.subject_id.clone();
        ev.labels = r.labels.clone();
        ev
    }

    // ---- housekeeping ---------------------------------------------------------------------

    /// Brings the account up to `now`: a new billing period, expired grants, expired holds.
    /// Every operation calls this first.
    pub fn settle(&mut self, plans: &Plans, now: Millis, events: &mut Vec<Event>) {
        let mut expiring: Vec<(Millis, i64, String)> = self
            .grants
            .values()
            .filter(|g| !g.closed && !g.is_voided && g.expires_at.is_some_and(|e| e <= now))
            .map(|g| (g.expires_at.unwrap_or(0), g.created_seq, g.grant_id.clone()))
            .collect();
        expiring.sort();
        for (_, _, id) in expiring {
            let mut ev = self.event("grant_expired", now);
            let g = self.grants.get_mut(&id).expect("grant listed above");
            let amount = g.remaining;
            g.remaining = 0;
            g.expired += amount;
            g.closed = true;
            ev.detail = id.clone();
            ev.push(&id, "available", "expired", amount);
            events.push(ev);
        }

        if now >= self.period_end {
            let (start, end) = period::bounds(self.account.billing_anchor, now);
            self.period_start = start;
            self.period_end = end;
            self.overage_used = 0;
            // Period alerts re-arm; level, debt and top-up alerts follow crossings only, so a
            // balance that stays low is not announced again each month.
            self.fired.remove("allowance");
            self.fired.remove("overage_cap");
            let ev = self.event("period_started", now);
            events.push(ev);
            self.issue_allowance(plans, now, events);
        }

        let mut due: Vec<(Millis, String)> = self
            .reservations
            .values()
            .filter(|r| r.state == ReservationState::Held && r.expires_at <= now)
            .map(|r| (r.expires_at, r.reservation_id.clone()))
            .collect();
        due.sort();
        for (_, id) in due {
            let mut r = self
                .reservations
                .remove(&id)
                .expect("reservation listed above");
            let mut ev = self.reservation_event("hold_expired", now, &r);
            self.release_holds(&mut r, now, &mut ev);
            self.adjust_budgets(&mut r);
            self.return_free_units(&mut r);
            r.state = ReservationState::Expired;
            self.reservations.insert(id, r);
            events.push(ev);
        }
    }

    /// The earliest expiry among held reservations, for the reaper.
    pub fn next_hold_expiry(&self) -> Option<Millis> {
        self.reservations
            .values()
            .filter(|r| r.state == ReservationState::Held)
            .map(|r| r.expires_at)
            .min()
    }

    // ---- balances ---------------------------------------------------------------------------

    /// Live grant ids in drawdown order: lowest priority number, soonest expiry, oldest.
    fn drawdown_order(&self, now: Millis) -> Vec<String> {
        let mut live: Vec<&Grant> = self.grants.values().filter(|g| g.is_live(now)).collect();
        live.sort_by_key(|g| (g.priority, g.expires_at.unwrap_or(i64::MAX), g.created_seq));
        live.into_iter().map(|g| g.grant_id.clone()).collect()
    }

    fn free(&self, now: Millis) -> Micros {
        self.grants
            .values()
            .filter(|g| g.is_live(now))
            .map(|g| g.remaining)
            .sum()
    }

    /// Pay-as-you-go room left this period (0 when overage is off).
    fn overage_room(&self) -> Micros {
        if !self.account.overage_enabled {
            return 0;
        }
        let limit = if self.account.overage_cap > 0 {
            self.account.overage_cap
        } else {
            MAX_MICROS
        };
        (limit - self.overage_used - self.overage_held).max(0)
    }

    pub fn balance(&self, now: Millis) -> Balance {
        let order = self.drawdown_order(now);
        let grants: Vec<GrantBalance> = order
            .iter()
            .map(|id| {
                let g = &self.grants[id];
                GrantBalance {
                    grant_id: g.grant_id.clone(),
                    kind: g.kind,
                    remaining: g.remaining,
                    held: g.held,
                    priority: g.priority,
                    expires_at: g.expires_at,
                }
            })
            .collect();
        let free: Micros = grants.iter().map(|g| g.remaining).sum();
        let live_held: Micros = grants.iter().map(|g| g.held).sum();
        let grant_holds: Micros = self.grants.values().map(|g| g.held).sum();
        Balance {
            account_id: self.account.account_id.clone(),
            available: (free + self.overage_room()).min(MAX_MICROS) - self.debt,
            held: grant_holds + self.overage_held,
            granted_remaining: free + live_held,
            debt: self.debt,
            overage_enabled: self.account.overage_enabled,
            overage_used: self.overage_used,
            overage_held: self.overage_held,
            overage_cap: self.account.overage_cap,
            overage_spent_total: self.overage_total,
            period_start: self.period_start,
            period_end: self.period_end,
            sequence: self.seq,
            grants,
            budgets: Vec::new(),
        }
    }

    /// Every check of a reserve, in order: the account, the subject's right to spend, frequency
    /// caps, credits, budgets. Returns the amount to hold and the counters it moves, or the
    /// refusal (with when to retry, for a frequency cap).
    pub(super) fn decide(
        &self,
        subject: &str,
        amount: Micros,
        min_amount: Micros,
        labels: &BTreeMap<String, String>,
        skus: &[(String, i64, Micros)],
        now: Millis,
    ) -> Result<Decision, (Denial, Option<Millis>)> {
        self.account_open(amount).map_err(|d| (d, None))?;
        self.may_spend(subject).map_err(|d| (d, None))?;
        let owners = self.policy_owners(subject);
        let rates = self
            .rate_counts(&owners, skus, now)
            .map_err(|(d, at)| (d, Some(at)))?;
        let want = self
            .credit_room(amount, min_amount, now)
            .map_err(|d| (d, None))?;
        let charges = self
            .budget_charges(&owners, want, labels, skus, now)
            .map_err(|d| (d, None))?;
        Ok(Decision {
            want,
            rates,
            charges,
        })
    }

    /// A suspended account spends nothing; one in debt spends nothing that costs credits (what is
    /// free goes on).
    fn account_open(&self, amount: Micros) -> Result<(), Denial> {
        if self.account.suspended {
            return Err((
                DenialReason::AccountSuspended,
                "the account is suspended".to_string(),
            ));
        }
        if self.debt > 0 && amount > 0 {
            return Err((
                DenialReason::DebtOutstanding,
                format!("the account owes {} credits", credits(self.debt)),
            ));
        }
        Ok(())
    }

    /// How much of `amount` (at least `min_amount` when non-zero) the credits cover, or why not.
    fn credit_room(
        &self,
        amount: Micros,
        min_amount: Micros,
        now: Millis,
    ) -> Result<Micros, Denial> {
        let free = self.free(now);
        let room = self.overage_room();
        if free + room >= amount {
            return Ok(amount);
        }
        if min_amount > 0 && free + room >= min_amount {
            return Ok(free + room);
        }
        let capped = self.account.overage_enabled && self.account.overage_cap > 0;
        let reason = if capped {
            DenialReason::OverageCapReached
        } else {
            DenialReason::InsufficientCredits
        };
        Err((
            reason,
            format!(
                "needs {} credits, {} available",
                credits(amount),
                credits(free + room)
            ),
        ))
    }

    // ---- accounts and grants ----------------------------------------------------------------

    pub fn update(&mut self, req: &UpdateAccount, now: Millis, events: &mut Vec<Event>) {
        let before = self.account.clone();
        let a = &mut self.account;
        if let Some(v) = req.overage_enabled {
            a.overage_enabled = v;
        }
        if let Some(v) = req.overage_cap {
            a.overage_cap = v;
        }
        if let Some(v) = req.suspended {
            a.suspended = v;
        }
        if let Some(v) = &req.parent_id {
            a.parent_id = v.clone();
        }
        if let Some(v) = &req.thresholds {
            a.thresholds = v.clone();
        }
        if let Some(v) = req.allowance_alert_percent {
            a.allowance_alert_percent = v;
        }
        if let Some((threshold, amount)) = req.top_up {
            a.top_up_threshold = threshold;
            a.top_up_amount = amount;
        }
        if self.account != before {
            let mut ev = self.event("account_updated", now);
            ev.actor = req.actor.clone();
            ev.before = Some(Audit::Account(before));
            ev.after = Some(Audit::Account(self.account.clone()));
            events.push(ev);
        }
    }

    pub fn create_grant(
        &mut self,
        req: &CreateGrant,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Grant> {
        let priority = req.priority.unwrap_or_else(|| req.kind.default_priority());
        if let Some(g) = self.grants.get(&req.grant_id) {
            let same = g.kind == req.kind
                && g.amount == req.amount
                && g.priority == priority
                && g.expires_at == req.expires_at
                && g.unit_price == req.unit_price
                && req.effective_at.is_none_or(|t| t == g.effective_at);
            return if same {
                Ok(g.clone())
            } else {
                Err(Error::conflict("grant_id"))
            };
        }
        let effective_at = req.effective_at.unwrap_or(now);
        if let Some(e) = req.expires_at {
            if e <= now || e <= effective_at {
                return Err(Error::invalid(
                    "expires_at",
                    "must be later than now and than effective_at",
                ));
            }
        }
        let open: Micros = self
            .grants
            .values()
            .filter(|g| !g.closed && !g.is_voided)
            .map(|g| g.remaining + g.held)
            .sum();
        if open + req.amount > MAX_MICROS {
            return Err(Error::invalid(
                "amount_micros",
                "the account's total would reach 2^53 micro-credits",
            ));
        }
        let mut ev = self.event("grant_created", now);
        let mut g = Grant {
            grant_id: req.grant_id.clone(),
            kind: req.kind,
            amount: req.amount,
            remaining: req.amount,
            held: 0,
            spent: 0,
            expired: 0,
            voided: 0,
            priority,
            effective_at,
            expires_at: req.expires_at,
            unit_price: req.unit_price,
            created_at: now,
            created_seq: self.seq,
            closed: false,
            is_voided: false,
        };
        ev.detail = g.grant_id.clone();
        ev.push(&g.grant_id, "issued", "available", g.amount);
        let pay = self.debt.min(g.amount);
        if pay > 0 {
            g.remaining -= pay;
            g.spent += pay;
            self.debt -= pay;
            ev.push(&g.grant_id, "available", "debt_paid", pay);
        }
        ev.actor = req.actor.clone();
        ev.after = Some(Audit::Grant(g.clone()));
        self.grants.insert(g.grant_id.clone(), g.clone());
        events.push(ev);
        Ok(g)
    }

    pub fn void_grant(
        &mut self,
        grant_id: &str,
        actor: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Grant> {
        let before = self
            .grants
            .get(grant_id)
            .ok_or(Error::GrantNotFound)?
            .clone();
        if before.is_voided || before.closed {
            return Ok(before);
        }
        let mut ev = self.event("grant_voided", now);
        ev.actor = actor.to_string();
        ev.before = Some(Audit::Grant(before));
        let g = self.grants.get_mut(grant_id).expect("checked above");
        let amount = g.remaining;
        g.remaining = 0;
        g.voided += amount;
        g.is_voided = true;
        ev.detail = grant_id.to_string();
        ev.push(grant_id, "available", "voided", amount);
        ev.after = Some(Audit::Grant(g.clone()));
        events.push(ev);
        Ok(g.clone())
    }

    // ---- the hot path -------------------------------------------------------------------------

    pub fn quote(&self, req: &Quote, now: Millis) -> QuoteOutcome {
        let no_labels = BTreeMap::new();
        let (lines, amount) = self.priced(req.amount, &req.lines);
        let denial = self
            .decide(
                &req.subject_id,
                amount,
                0,
                &no_labels,
                &skus_of(&lines),
                now,
            )
            .err()
            .map(|((reason, _), _)| reason);
        QuoteOutcome {
            amount,
            affordable: denial.is_none(),
            denial,
            balance: self.balance(now),
            free_applied: lines.iter().map(|l| l.free_applied).sum(),
            lines,
        }
    }

    /// A plain amount, or the total of priced lines after free units.
    fn priced(&self, amount: Micros, lines: &[Line]) -> (Vec<HeldLine>, Micros) {
        if lines.is_empty() {
            (Vec::new(), amount)
        } else {
            self.price_lines(lines)
        }
    }

    pub fn reserve(
        &mut self,
        req: &Reserve,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<ReserveOutcome> {
        if let Some(r) = self.reservations.get(&req.reservation_id) {
            let same_items = if req.lines.is_empty() {
                r.lines.is_empty() && r.requested == req.amount
            } else {
                r.lines.len() == req.lines.len()
                    && r.lines
                        .iter()
                        .zip(&req.lines)
                        .all(|(h, l)| h.sku == l.sku && h.quantity == l.quantity)
            };
            let same = r.subject_id == req.subject_id
                && same_items
                && r.min_amount == req.min_amount
                && r.ttl_seconds == req.ttl_seconds
                && r.labels == req.labels;
            if !same {
                return Err(Error::conflict("reservation_id"));
            }
            return Ok(ReserveOutcome {
                denial: None,
                denial_detail: String::new(),
                reservation: Some(r.clone()),
                balance: self.balance(now),
                replayed: true,
                retry_at: None,
            });
        }
        let (lines, amount) = self.priced(req.amount, &req.lines);
        let Decision {
            want,
            rates,
            charges,
        } = match self.decide(
            &req.subject_id,
            amount,
            req.min_amount,
            &req.labels,
            &skus_of(&lines),
            now,
        ) {
            Ok(decision) => decision,
            Err(((reason, detail), retry_at)) => {
                return Ok(ReserveOutcome {
                    denial: Some(reason),
                    denial_detail: detail,
                    reservation: None,
                    balance: self.balance(now),
                    replayed: false,
                    retry_at,
                })
            }
        };
        let mut r = Reservation {
            reservation_id: req.reservation_id.clone(),
            account_id: self.account.account_id.clone(),
            subject_id: req.subject_id.clone(),
            state: ReservationState::Held,
            requested: amount,
            granted: want,
            min_amount: req.min_amount,
            ttl_seconds: req.ttl_seconds,
            held: want,
            committed: 0,
            expires_at: now + req.ttl_seconds * 1000,
            created_at: now,
            allocations: Vec::new(),
            labels: req.labels.clone(),
            late: false,
            commit: None,
            captures: BTreeMap::new(),
            released: None,
            budget_charges: charges,
            lines,
            card_version: req.card_version.clone(),
            free_window: self.period_start,
        };
        self.take_free_units(&r);
        for (key, window, used) in rates {
            self.usage.insert(key, Counter { window, used });
        }
        for c in &r.budget_charges {
            self.add_usage(&c.key, c.window, c.amount);
        }
        let mut ev = self.reservation_event("reserved", now, &r);
        let mut need = want;
        for id in self.drawdown_order(now) {
            if need == 0 {
                break;
            }
            let g = self.grants.get_mut(&id).expect("live grant");
            let take = g.remaining.min(need);
            if take > 0 {
                g.remaining -= take;
                g.held += take;
                need -= take;
                r.allocations.push(Allocation {
                    grant_id: id.clone(),
                    held: take,
                    committed: 0,
                });
                ev.push(&id, "available", "held", take);
            }
        }
        if need > 0 {
            self.overage_held += need;
            r.allocations.push(Allocation {
                grant_id: OVERAGE_ID.to_string(),
                held: need,
                committed: 0,
            });
            ev.push(OVERAGE_ID, "overage", "held", need);
        }
        self.reservations
            .insert(r.reservation_id.clone(), r.clone());
        events.push(ev);
        Ok(ReserveOutcome {
            denial: None,
            denial_detail: String::new(),
            reservation: Some(r),
            balance: self.balance(now),
            replayed: false,
            retry_at: None,
        })
    }

    pub fn commit(
        &mut self,
        req: &Commit,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<CommitOutcome> {
        let params = CommitParams {
            amount: req.amount,
            overrun: req.overrun,
            cost: req.cost,
            lines: req.lines.clone(),
        };
        let r = self
            .reservations
            .get(&req.reservation_id)
            .ok_or(Error::ReservationNotFound)?;
        let earlier = match &req.capture_id {
            Some(cid) => r.captures.get(cid).map(|rec| (rec, "capture_id")),
            None => r.commit.as_ref().map(|rec| (rec, "reservation_id")),
        };
        if let Some((rec, what)) = earlier {
            if rec.params != params {
                return Err(Error::conflict(what));
            }
            return Ok(CommitOutcome {
                reservation: r.clone(),
                effect: rec.effect,
                balance: self.balance(now),
                replayed: true,
            });
        }
        match r.state {
            ReservationState::Released => return Err(Error::ReservationReleased),
            ReservationState::Committed => return Err(Error::ReservationCommitted),
            ReservationState::Held | ReservationState::Expired => {}
        }

        for (i, item) in req.lines.iter().enumerate() {
            if !r.lines.iter().any(|h| h.sku == item.sku) {
                return Err(Error::invalid(
                    &format!("items[{i}].sku"),
                    format!("{} is not an item of the hold", item.sku),
                ));
            }
        }

        let mut r = self
            .reservations
            .remove(&req.reservation_id)
            .expect("found above");
        let items = capture_lines(&mut r, &req.lines);
        let amount = if req.lines.is_empty() {
            req.amount
        } else {
            items.iter().map(|i| i.amount).sum()
        };
        let late = r.state == ReservationState::Expired;
        let charge = match req.overrun {
            Overrun::Charge => amount,
            Overrun::Cap => amount.min((r.granted - r.committed).max(0)),
        };
        let overrun = (amount - r.held).max(0);
        let kind = if req.capture_id.is_some() {
            "captured"
        } else {
            "committed"
        };
        let mut ev = self.reservation_event(kind, now, &r);
        ev.cost = req.cost;
        ev.detail = req.capture_id.clone().unwrap_or_default();
        ev.items = items;

        // 1. From the hold, in the order it was allocated.
        let from_hold = charge.min(r.held);
        let mut rest = from_hold;
        for a in r.allocations.iter_mut() {
            let take = a.held.min(rest);
            if take == 0 {
                continue;
            }
            a.held -= take;
            a.committed += take;
            rest -= take;
            if a.grant_id == OVERAGE_ID {
                self.overage_held -= take;
                self.overage_used += take;
                self.overage_total += take;
            } else {
                let g = self.grants.get_mut(&a.grant_id).expect("allocated grant");
                g.held -= take;
                g.spent += take;
            }
            ev.push(&a.grant_id, "held", "spent", take);
        }
        r.held -= from_hold;

        // 2. The excess: available credits, then overage, then debt.
        let mut excess = charge - from_hold;
        for id in self.drawdown_order(now) {
            if excess == 0 {
                break;
            }
            let g = self.grants.get_mut(&id).expect("live grant");
            let take = g.remaining.min(excess);
            if take > 0 {
                g.remaining -= take;
                g.spent += take;
                excess -= take;
                add_committed(&mut r, &id, take);
                ev.push(&id, "available", "spent", take);
            }
        }
        let from_overage = self.overage_room().min(excess);
        if from_overage > 0 {
            self.overage_used += from_overage;
            self.overage_total += from_overage;
            excess -= from_overage;
            add_committed(&mut r, OVERAGE_ID, from_overage);
            ev.push(OVERAGE_ID, "overage", "spent", from_overage);
        }
        let debt = excess;
        if debt > 0 {
            self.debt += debt;
            add_committed(&mut r, DEBT_ID, debt);
            ev.push(DEBT_ID, "debt", "spent", debt);
        }
        r.committed += charge;

        // 3. A final commit returns what is still held.
        let released = if req.capture_id.is_none() {
            let released = self.release_holds(&mut r, now, &mut ev);
            self.return_free_units(&mut r);
            r.state = ReservationState::Committed;
            released
        } else {
            0
        };
        r.late |= late;
        self.adjust_budgets(&mut r);
        let effect = CommitEffect {
            charged: charge,
            released,
            overrun,
            debt,
            late,
        };
        let record = CommitRecord { params, effect };
        match &req.capture_id {
            Some(cid) => {
                r.captures.insert(cid.clone(), record);
            }
            None => r.commit = Some(record),
        }
        self.reservations
            .insert(r.reservation_id.clone(), r.clone());
        events.push(ev);
        Ok(CommitOutcome {
            reservation: r,
            effect,
            balance: self.balance(now),
            replayed: false,
        })
    }

    pub fn release(
        &mut self,
        reservation_id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<ReleaseOutcome> {
        let r = self
            .reservations
            .get(reservation_id)
            .ok_or(Error::ReservationNotFound)?;
        let (released, replayed) = match r.state {
            ReservationState::Committed => return Err(Error::ReservationCommitted),
            ReservationState::Released => (r.released.unwrap_or(0), true),
            ReservationState::Expired => (0, false),
            ReservationState::Held => {
                let mut r = self
                    .reservations
                    .remove(reservation_id)
                    .expect("found above");
                let mut ev = self.reservation_event("released", now, &r);
                let released = self.release_holds(&mut r, now, &mut ev);
                self.adjust_budgets(&mut r);
                self.return_free_units(&mut r);
                r.state = ReservationState::Released;
                r.released = Some(released);
                self.reservations.insert(r.reservation_id.clone(), r);
                events.push(ev);
                (released, false)
            }
        };
        Ok(ReleaseOutcome {
            reservation: self.reservations[reservation_id].clone(),
            released,
            balance: self.balance(now),
            replayed,
        })
    }

    pub fn extend(
        &mut self,
        req: &Extend,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Reservation> {
        let r = self
            .reservations
            .get(&req.reservation_id)
            .ok_or(Error::ReservationNotFound)?;
        match r.state {
            ReservationState::Committed => return Err(Error::ReservationCommitted),
            ReservationState::Released => return Err(Error::ReservationReleased),
            ReservationState::Expired => return Err(Error::ReservationExpired),
            ReservationState::Held => {}
        }
        let mut r = self
            .reservations
            .remove(&req.reservation_id)
            .expect("found above");
        r.expires_at = now + req.ttl_seconds * 1000;
        let ev = self.reservation_event("extended", now, &r);
        self.reservations
            .insert(r.reservation_id.clone(), r.clone());
        events.push(ev);
        Ok(r)
    }

    /// Returns everything `r` still holds to where it came from: a live grant gets it back, an
    /// expired or voided grant books it as expired or voided, overage gets its room back.
    fn release_holds(&mut self, r: &mut Reservation, now: Millis, ev: &mut Event) -> Micros {
        let mut total = 0;
        for a in r.allocations.iter_mut().filter(|a| a.held > 0) {
            let amount = a.held;
            a.held = 0;
            total += amount;
            if a.grant_id == OVERAGE_ID {
                self.overage_held -= amount;
                ev.push(OVERAGE_ID, "held", "overage", amount);
                continue;
            }
            let g = self.grants.get_mut(&a.grant_id).expect("allocated grant");
            g.held -= amount;
            let to = match g.state(now) {
                GrantState::Voided => {
                    g.voided += amount;
                    "voided"
                }
                GrantState::Expired => {
                    g.expired += amount;
                    "expired"
                }
                GrantState::Active | GrantState::Pending => {
                    g.remaining += amount;
                    "available"
                }
            };
            ev.push(&a.grant_id, "held", to, amount);
        }
        r.held = 0;
        total
    }
}

/// The SKUs of priced lines with their quantities and amounts, for caps and budgets.
fn skus_of(lines: &[HeldLine]) -> Vec<(String, i64, Micros)> {
    lines
        .iter()
        .map(|l| (l.sku.clone(), l.quantity, l.amount))
        .collect()
}

/// Prices a commit's items at the hold's prices, using the free units the hold took first.
/// Prices a commit's items at the hold's prices, its free units first: the charge of each line.
fn capture_lines(r: &mut Reservation, items: &[ItemCount]) -> Vec<ItemCharge> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let held = r
            .lines
            .iter_mut()
            .find(|h| h.sku == item.sku)
            .expect("checked before");
        let free = item.quantity.min(held.free_left);
        held.free_left -= free;
        out.push(ItemCharge {
            sku: item.sku.clone(),
            quantity: item.quantity,
            amount: line_amount(item.quantity - free, held.price_num, held.price_den),
        });
    }
    out
}

fn add_committed(r: &mut Reservation, grant_id: &str, amount: Micros) {
    match r.allocations.iter_mut().find(|a| a.grant_id == grant_id) {
        Some(a) => a.committed += amount,
        None => r.allocations.push(Allocation {
            grant_id: grant_id.to_string(),
            held: 0,
            committed: amount,
        }),
    }
}
