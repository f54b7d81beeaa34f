//! Policy enforcement and alerts of an account: spending rights, frequency caps, budgets, and the
//! threshold / allowance / overage / debt / top-up events. `lib.lua` mirrors every function here.

use std::collections::BTreeMap;

use super::account::AccountState;
use super::event::{Audit, Event};
use super::policy::*;
use super::types::*;

/// A refusal: the reason and a human sentence.
type Denial = (DenialReason, String);

/// A new rate counter value: key, window, used.
pub type RateCount = (String, Millis, i64);

fn free_key(sku: &str) -> String {
    format!("f|{sku}")
}

fn who(owner: &str) -> String {
    if owner == ACCOUNT_WIDE {
        "the account".to_string()
    } else {
        format!("subject {owner}")
    }
}

/// `q` and `r` with `n = q * d + r`, `0 <= r < d`.
fn divmod(n: i64, d: i64) -> (i64, i64) {
    (n.div_euclid(d), n.rem_euclid(d))
}

impl AccountState {
    /// The policies that apply to `subject`: its own, then the account's `*`.
    pub(super) fn policy_owners(&self, subject: &str) -> Vec<String> {
        let mut owners = Vec::new();
        if subject != ACCOUNT_WIDE && self.policies.contains_key(subject) {
            owners.push(subject.to_string());
        }
        if self.policies.contains_key(ACCOUNT_WIDE) {
            owners.push(ACCOUNT_WIDE.to_string());
        }
        owners
    }

    pub(super) fn may_spend(&self, subject: &str) -> Result<(), Denial> {
        let enabled = self
            .policies
            .get(subject)
            .or_else(|| self.policies.get(ACCOUNT_WIDE))
            .is_none_or(|p| p.spending_enabled);
        if enabled {
            Ok(())
        } else {
            Err((
                DenialReason::SpendingDisabled,
                format!("spending is disabled for subject '{subject}'"),
            ))
        }
    }

    pub(super) fn counter(&self, key: &str, window: Millis) -> i64 {
        self.usage
            .get(key)
            .filter(|c| c.window == window)
            .map_or(0, |c| c.used)
    }

    pub(super) fn add_usage(&mut self, key: &str, window: Millis, delta: i64) {
        let c = self
            .usage
            .entry(key.to_string())
            .or_insert(Counter { window, used: 0 });
        if c.window != window {
            *c = Counter { window, used: 0 };
        }
        c.used += delta;
    }

    /// The frequency caps a reserve of `skus` passes, as the counters it would leave; or the cap
    /// that refuses it and when to retry.
    pub(super) fn rate_counts(
        &self,
        owners: &[String],
        skus: &[(String, i64, Micros)],
        now: Millis,
    ) -> Result<Vec<RateCount>, (Denial, Millis)> {
        let mut out = Vec::new();
        for owner in owners {
            for rl in &self.policies[owner].rate_limits {
                let q: i64 = if rl.sku == "*" {
                    1
                } else {
                    skus.iter().filter(|l| l.0 == rl.sku).map(|l| l.1).sum()
                };
                if q == 0 {
                    continue;
                }
                let span = rl.window_seconds * 1000;
                let window = now - now.rem_euclid(span);
                let key = rate_key(owner, &rl.sku, rl.window_seconds);
                let used = self.counter(&key, window);
                if used + q > rl.max_count {
                    let wait = (window + span - now + 999) / 1000;
                    let detail = format!(
                        "{} may use {} {} per {} s; retry in {} s",
                        who(owner),
                        rl.max_count,
                        rl.sku,
                        rl.window_seconds,
                        wait
                    );
                    return Err(((DenialReason::RateLimited, detail), window + span));
                }
                out.push((key, window, used + q));
            }
        }
        Ok(out)
    }

    /// What a hold of `amount` adds to each budget, or the budget that refuses it.
    pub(super) fn budget_charges(
        &self,
        owners: &[String],
        amount: Micros,
        labels: &BTreeMap<String, String>,
        skus: &[(String, i64, Micros)],
        now: Millis,
    ) -> Result<Vec<BudgetCharge>, Denial> {
        let mut out = Vec::new();
        for owner in owners {
            for b in &self.policies[owner].budgets {
                let Some((share, fixed)) = scope_amount(&b.scope, amount, labels, skus) else {
                    continue;
                };
                let window = budget_window(b.period, self.period_start, now);
                let key = budget_key(owner, b);
                let used = self.counter(&key, window);
                if used + share > b.limit {
                    let detail = format!(
                        "budget {} of {}: {} of {} credits left",
                        key,
                        who(owner),
                        credits((b.limit - used).max(0)),
                        credits(b.limit)
                    );
                    return Err((DenialReason::BudgetLimitReached, detail));
                }
                out.push(BudgetCharge {
                    key,
                    window,
                    amount: share,
                    fixed,
                });
            }
        }
        Ok(out)
    }

    /// The budgets that apply to `subject`, with what they have used in their current window.
    pub fn subject_budgets(&self, subject: &str, now: Millis) -> Vec<BudgetStatus> {
        let mut out = Vec::new();
        for owner in self.policy_owners(subject) {
            for b in &self.policies[&owner].budgets {
                let window = budget_window(b.period, self.period_start, now);
                out.push(BudgetStatus {
                    owner: owner.clone(),
                    scope: b.scope.clone(),
                    period: b.period,
                    limit: b.limit,
                    used: self.counter(&budget_key(&owner, b), window),
                });
            }
        }
        out
    }

    /// Brings the budget counters in line with what the hold still holds or has charged.
    pub(super) fn adjust_budgets(&mut self, r: &mut Reservation) {
        let exposure = r.held + r.committed;
        for c in r.budget_charges.iter_mut() {
            let target = if c.fixed {
                c.amount.min(exposure)
            } else {
                exposure
            };
            let delta = target - c.amount;
            if delta == 0 {
                continue;
            }
            if let Some(u) = self.usage.get_mut(&c.key) {
                if u.window == c.window {
                    u.used += delta;
                }
            }
            c.amount = target;
        }
    }

    // ---- priced lines -------------------------------------------------------------------------

    /// Prices `lines` against the period's free units (a SKU's free units go to its first lines
    /// first): the held lines and their total.
    pub(super) fn price_lines(&self, lines: &[Line]) -> (Vec<HeldLine>, Micros) {
        let mut taken: BTreeMap<&str, i64> = BTreeMap::new();
        let mut held = Vec::with_capacity(lines.len());
        for l in lines {
            let before = taken.get(l.sku.as_str()).copied().unwrap_or(0);
            let used = self.counter(&free_key(&l.sku), self.period_start) + before;
            let applied = l.quantity.min((l.free_per_period - used).max(0));
            taken.insert(&l.sku, before + applied);
            held.push(HeldLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
                price_num: l.price_num,
                price_den: l.price_den,
                free_applied: applied,
                free_left: applied,
                amount: line_amount(l.quantity - applied, l.price_num, l.price_den),
            });
        }
        let total = held.iter().map(|l| l.amount).sum();
        (held, total)
    }

    /// Takes the free units of a new hold from the period's counters.
    pub(super) fn take_free_units(&mut self, r: &Reservation) {
        for l in &r.lines {
            if l.free_applied > 0 {
                self.add_usage(&free_key(&l.sku), r.free_window, l.free_applied);
            }
        }
    }

    /// Gives back the free units a hold took and no capture used (same period only).
    pub(super) fn return_free_units(&mut self, r: &mut Reservation) {
        for l in r.lines.iter_mut() {
            if l.free_left == 0 {
                continue;
            }
            if let Some(u) = self.usage.get_mut(&free_key(&l.sku)) {
                if u.window == r.free_window {
                    u.used -= l.free_left;
                }
            }
            l.free_left = 0;
        }
    }

    // ---- policies ---------------------------------------------------------------------------

    pub fn set_policy(
        &mut self,
        policy: &SubjectPolicy,
        actor: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> SubjectPolicy {
        if self.policies.get(&policy.subject_id) != Some(policy) {
            let before = self
                .policies
                .insert(policy.subject_id.clone(), policy.clone());
            let mut ev = self.event("policy_set", now);
            ev.subject_id = policy.subject_id.clone();
            ev.actor = actor.to_string();
            ev.before = before.map(Audit::Policy);
            ev.after = Some(Audit::Policy(policy.clone()));
            events.push(ev);
        }
        policy.clone()
    }

    pub fn policy(&self, subject: &str) -> SubjectPolicy {
        self.policies
            .get(subject)
            .cloned()
            .unwrap_or_else(|| SubjectPolicy::open(subject))
    }

    pub fn request_access(
        &mut self,
        subject: &str,
        note: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) {
        let mut ev = self.event("spending_access_requested", now);
        ev.subject_id = subject.to_string();
        ev.detail = note.to_string();
        events.push(ev);
    }

    // ---- alerts -----------------------------------------------------------------------------

    fn levels(&self) -> Vec<Micros> {
        if self.account.thresholds.is_empty() {
            DEFAULT_THRESHOLDS.to_vec()
        } else {
            self.account.thresholds.clone()
        }
    }

    /// Marks the levels already crossed at creation, so a new account does not announce them.
    pub(super) fn arm_alerts(&mut self, now: Millis) {
        let available = self.balance(now).available;
        for level in self.levels() {
            if available <= level {
                self.fired.insert(format!("level:{level}"));
            }
        }
    }

    fn alert(
        &mut self,
        key: &str,
        kind: &str,
        detail: String,
        now: Millis,
        events: &mut Vec<Event>,
    ) {
        if self.fired.insert(key.to_string()) {
            let mut ev = self.event(kind, now);
            ev.detail = detail;
            events.push(ev);
        }
    }

    /// Fires each alert once per crossing per period; levels, debt and top-ups re-arm when the
    /// balance goes back above them, everything re-arms at a new period.
    pub(super) fn check_alerts(&mut self, now: Millis, events: &mut Vec<Event>) {
        let available = self.balance(now).available;
        for level in self.levels() {
            let key = format!("level:{level}");
            if available <= level {
                self.alert(&key, "threshold_crossed", level.to_string(), now, events);
            } else {
                self.fired.remove(&key);
            }
        }

        let (mut total, mut used) = (0, 0);
        for g in self.grants.values() {
            if g.kind == GrantKind::Allowance && g.is_live(now) {
                total += g.amount;
                used += g.amount - g.remaining;
            }
        }
        let percent = match self.account.allowance_alert_percent {
            0 => DEFAULT_ALLOWANCE_ALERT_PERCENT,
            p => p,
        };
        let (q, r) = divmod(total, 100);
        let mark = q * percent + (r * percent + 99) / 100;
        if total > 0 && used >= mark {
            self.alert(
                "allowance",
                "allowance_used",
                percent.to_string(),
                now,
                events,
            );
        }

        let a = &self.account;
        if a.overage_enabled
            && a.overage_cap > 0
            && self.overage_used + self.overage_held >= a.overage_cap
        {
            self.alert(
                "overage_cap",
                "overage_cap_reached",
                String::new(),
                now,
                events,
            );
        }

        if self.debt > 0 {
            self.alert("debt", "debt_incurred", self.debt.to_string(), now, events);
        } else {
            self.fired.remove("debt");
        }

        if self.account.top_up_amount > 0 && available <= self.account.top_up_threshold {
            let amount = self.account.top_up_amount.to_string();
            self.alert("top_up", "top_up_requested", amount, now, events);
        } else {
            self.fired.remove("top_up");
        }
    }
}
