//! Who may spend inside an account, how much and how often: subject policies with spending rights,
//! budgets and frequency caps, and the usage counters that enforce them.
//!
//! A policy belongs to a subject (a user, an API key, a project) or to `*`, the whole account.
//! A subject may spend when its own policy says so, or, without one, when the account's `*`
//! policy does (the default is yes). Budgets and frequency caps of both the subject and `*` apply;
//! `*` counters are shared by every subject of the account.
//!
//! Counters live in one map per account. Each value remembers the window it counts (the billing
//! period, a day, a rate-limit window) so a stale value counts as zero and no cleanup is needed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::types::{Micros, Millis};

/// The policy that applies to every subject of an account.
pub const ACCOUNT_WIDE: &str = "*";

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BudgetPeriod {
    /// The account's monthly billing period.
    #[default]
    BillingPeriod,
    /// A UTC day.
    Day,
}

/// A credit limit per period on a scope: `subject` (the policy's subject itself),
/// `label:KEY=VALUE` (holds carrying that label) or `sku:SKU` (what is priced with that SKU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub scope: String,
    pub period: BudgetPeriod,
    pub limit: Micros,
}

/// At most `max_count` units of `sku` per fixed window of `window_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub sku: String,
    pub max_count: i64,
    pub window_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectPolicy {
    pub subject_id: String,
    pub spending_enabled: bool,
    pub budgets: Vec<Budget>,
    pub rate_limits: Vec<RateLimit>,
}

impl SubjectPolicy {
    pub fn open(subject_id: &str) -> Self {
        SubjectPolicy {
            subject_id: subject_id.to_string(),
            spending_enabled: true,
            budgets: Vec::new(),
            rate_limits: Vec::new(),
        }
    }
}

/// A usage counter: what it counted in which window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub window: Millis,
    pub used: i64,
}

/// What one hold added to one budget counter, to be adjusted on commit and release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetCharge {
    pub key: String,
    pub window: Millis,
    pub amount: Micros,
    /// `sku` scopes count only that SKU's share and never follow overruns.
    pub fixed: bool,
}

/// The start of the budget window that contains `now`.
pub fn budget_window(period: BudgetPeriod, period_start: Millis, now: Millis) -> Millis {
    match period {
        BudgetPeriod::BillingPeriod => period_start,
        BudgetPeriod::Day => now - now.rem_euclid(DAY_MS),
    }
}

/// The counter key of a budget: owner, scope and period kind.
pub fn budget_key(owner: &str, b: &Budget) -> String {
    let period = match b.period {
        BudgetPeriod::BillingPeriod => "period",
        BudgetPeriod::Day => "day",
    };
    format!("b|{owner}|{}|{period}", b.scope)
}

pub fn rate_key(owner: &str, sku: &str, window_seconds: i64) -> String {
    format!("r|{owner}|{sku}|{window_seconds}")
}

/// What `scope` counts of a hold: its whole amount, the share of one SKU, or nothing.
pub fn scope_amount(
    scope: &str,
    amount: Micros,
    labels: &BTreeMap<String, String>,
    skus: &[(String, i64, Micros)],
) -> Option<(Micros, bool)> {
    if scope.is_empty() || scope == "subject" {
        return Some((amount, false));
    }
    if let Some(kv) = scope.strip_prefix("label:") {
        let (k, v) = kv.split_once('=')?;
        return (labels.get(k).map(String::as_str) == Some(v)).then_some((amount, false));
    }
    if let Some(sku) = scope.strip_prefix("sku:") {
        let share: Micros = skus.iter().filter(|l| l.0 == sku).map(|l| l.2).sum();
        return (skus.iter().any(|l| l.0 == sku)).then_some((share, true));
    }
    None
}
