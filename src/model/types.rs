//! The nouns of the credit model and the requests and answers of each operation.
//!
//! Amounts are `i64` micro-credits (1 credit = 1,000,000) and always below 2^53 so that the Redis
//! Lua scripts, whose numbers are doubles, stay exact. Times are Unix milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::policy::{BudgetCharge, BudgetPeriod};

/// Micro-credits (or micro-units of money for prices and costs).
pub type Micros = i64;
/// Milliseconds since the Unix epoch, from the one shared clock.
pub type Millis = i64;

/// Every amount and every account total stays at or below this (2^53 - 1).
pub const MAX_MICROS: Micros = (1 << 53) - 1;

/// Micro-credits as whole credits with decimals, trailing zeros trimmed ("1.5", "12", "-0.25").
pub fn credits(m: Micros) -> String {
    let sign = if m < 0 { "-" } else { "" };
    let a = m.unsigned_abs();
    let (whole, frac) = (a / 1_000_000, a % 1_000_000);
    if frac == 0 {
        format!("{sign}{whole}")
    } else {
        let frac = format!("{frac:06}");
        format!("{sign}{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// Pseudo grant id under which pay-as-you-go overage appears in allocations and events.
pub const OVERAGE_ID: &str = "@overage";
/// Pseudo grant id under which debt appears in allocations and events.
pub const DEBT_ID: &str = "@debt";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GrantKind {
    Allowance,
    Prepaid,
    TopUp,
    Promo,
}

impl GrantKind {
    /// Default drawdown priority: the allowance goes first, then promo, then prepaid and top-ups.
    pub fn default_priority(self) -> i32 {
        match self {
            GrantKind::Allowance => 10,
            GrantKind::Promo => 20,
            GrantKind::Prepaid | GrantKind::TopUp => 30,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Allowance => "ALLOWANCE",
            GrantKind::Prepaid => "PREPAID",
            GrantKind::TopUp => "TOP_UP",
            GrantKind::Promo => "PROMO",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GrantState {
    Active,
    Pending,
    Expired,
    Voided,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationState {
    Held,
    Committed,
    Released,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DenialReason {
    InsufficientCredits,
    BudgetLimitReached,
    SpendingDisabled,
    RateLimited,
    AccountSuspended,
    OverageCapReached,
    DebtOutstanding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Overrun {
    /// Charge the excess from available credits, then overage, then debt.
    #[default]
    Charge,
    /// Never charge more than the hold.
    Cap,
}

/// One priced line of a request, as the rate card priced it when the request came in: a SKU, how
/// many units, the unit price as an exact fraction of micro-credits (`price_num / price_den`,
/// the denominator a power of ten) and the SKU's free units per billing period.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub quantity: i64,
    pub price_num: i64,
    pub price_den: i64,
    pub free_per_period: i64,
}

/// A priced line as held or quoted: its price, the free units it took, the free units captures
/// have not used yet, and what it costs after them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldLine {
    pub sku: String,
    pub quantity: i64,
    pub price_num: i64,
    pub price_den: i64,
    pub free_applied: i64,
    pub free_left: i64,
    pub amount: Micros,
}

/// What `units` cost at `num / den` micro-credits each, rounded down to a whole micro-credit
/// (never more than the exact price; see `crate::pricing`).
pub fn line_amount(units: i64, num: i64, den: i64) -> Micros {
    (i128::from(units) * i128::from(num) / i128::from(den.max(1))) as Micros
}

/// A block of credits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grant_id: String,
    pub kind: GrantKind,
    pub amount: Micros,
    /// Free credits: not held, spent, expired or voided.
    pub remaining: Micros,
    pub held: Micros,
    pub spent: Micros,
    pub expired: Micros,
    pub voided: Micros,
    pub priority: i32,
    pub effective_at: Millis,
    #[serde(default)]
    pub expires_at: Option<Millis>,
    pub unit_price: Micros,
    pub created_at: Millis,
    /// The account sequence number at creation: the "oldest first" tie-break of the drawdown.
    pub created_seq: i64,
    /// Set once the grant's expiry has been settled (its remaining credits moved to `expired`).
    pub closed: bool,
    pub is_voided: bool,
}

impl Grant {
    pub fn state(&self, now: Millis) -> GrantState {
        if self.is_voided {
            GrantState::Voided
        } else if self.closed || self.expires_at.is_some_and(|e| e <= now) {
            GrantState::Expired
        } else if self.effective_at > now {
            GrantState::Pending
        } else {
            GrantState::Active
        }
    }

    /// Live grants count towards the balance and can be drawn from.
    pub fn is_live(&self, now: Millis) -> bool {
        self.state(now) == GrantState::Active
    }
}

/// What a reservation holds and has captured from one grant (or from overage or debt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub grant_id: String,
    pub held: Micros,
    pub committed: Micros,
}

/// The parameters of a commit, kept to recognise replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitParams {
    pub amount: Micros,
    pub overrun: Overrun,
    pub cost: Micros,
    #[serde(default)]
    pub lines: Vec<ItemCount>,
}

/// A SKU and a quantity, as a commit names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCount {
    pub sku: String,
    pub quantity: i64,
}

/// The effect of one commit, returned again on replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommitEffect {
    pub charged: Micros,
    pub released: Micros,
    pub overrun: Micros,
    pub debt: Micros,
    pub late: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    pub params: CommitParams,
    pub effect: CommitEffect,
}

/// A pre-flight hold and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub reservation_id: String,
    pub account_id: String,
    pub subject_id: String,
    pub state: ReservationState,
    /// Amount asked for.
    pub requested: Micros,
    /// Amount held at reserve time (less than `requested` only with `min_amount`).
    pub granted: Micros,
    pub min_amount: Micros,
    pub ttl_seconds: i64,
    /// Still held.
    pub held: Micros,
    /// Captured so far.
    pub committed: Micros,
    pub expires_at: Millis,
    pub created_at: Millis,
    pub allocations: Vec<Allocation>,
    #[serde(with = "pairs")]
    pub labels: BTreeMap<String, String>,
    /// A commit arrived after the hold had expired.
    pub late: bool,
    /// Effect of the final commit, if any.
    #[serde(default)]
    pub commit: Option<CommitRecord>,
    /// Partial captures by capture id.
    #[serde(default, with = "pairs")]
    pub captures: BTreeMap<String, CommitRecord>,
    /// Amount returned by the release, if released.
    #[serde(default)]
    pub released: Option<Micros>,
    /// What this hold adds to budget counters.
    #[serde(default)]
    pub budget_charges: Vec<BudgetCharge>,
    /// Priced lines, when the hold was reserved with items.
    #[serde(default)]
    pub lines: Vec<HeldLine>,
    /// The rate card version the lines were priced with.
    #[serde(default)]
    pub card_version: String,
    /// The billing period whose free units the lines took.
    #[serde(default)]
    pub free_window: Millis,
}

/// The account's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub account_id: String,
    pub parent_id: String,
    pub plan_id: String,
    pub billing_anchor: Millis,
    pub overage_enabled: bool,
    /// 0 = no cap.
    pub overage_cap: Micros,
    pub suspended: bool,
    pub created_at: Millis,
    /// Levels of available credits whose downward crossing is an event (empty = the defaults).
    #[serde(default)]
    pub thresholds: Vec<Micros>,
    /// Share of the period's allowance, in percent, whose use is an event (0 = 75).
    #[serde(default)]
    pub allowance_alert_percent: i64,
    /// Auto top-up: when available credits fall to this level a top-up is requested (0 amount = off).
    #[serde(default)]
    pub top_up_threshold: Micros,
    #[serde(default)]
    pub top_up_amount: Micros,
}

/// The default threshold levels: 10,000, 5,000, 1,000 and 0 credits.
pub const DEFAULT_THRESHOLDS: [Micros; 4] = [10_000_000_000, 5_000_000_000, 1_000_000_000, 0];
/// The default allowance alert: 75 % used.
pub const DEFAULT_ALLOWANCE_ALERT_PERCENT: i64 = 75;

/// One live grant as shown in a balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantBalance {
    pub grant_id: String,
    pub kind: GrantKind,
    pub remaining: Micros,
    pub held: Micros,
    pub priority: i32,
    #[serde(default)]
    pub expires_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub account_id: String,
    /// Free grant credits plus overage room, minus debt (negative while in debt).
    pub available: Micros,
    /// All active holds, on grants and on overage.
    pub held: Micros,
    /// Live grants' remaining credits, their holds included.
    pub granted_remaining: Micros,
    pub debt: Micros,
    pub overage_enabled: bool,
    pub overage_used: Micros,
    pub overage_held: Micros,
    pub overage_cap: Micros,
    pub overage_spent_total: Micros,
    pub period_start: Millis,
    pub period_end: Millis,
    pub sequence: i64,
    /// Live grants in drawdown order.
    pub grants: Vec<GrantBalance>,
    /// When asked for a subject: the budgets that apply to it and what they have used.
    #[serde(default)]
    pub budgets: Vec<BudgetStatus>,
}

/// A budget that applies to a subject (its own, or the account's `*`), with what it has used in
/// its current window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub owner: String,
    pub scope: String,
    pub period: BudgetPeriod,
    pub limit: Micros,
    pub used: Micros,
}

// ---- requests -------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateAccount {
    /// Who asks (the token's name), for the audit trail.
    pub actor: String,
    pub account_id: String,
    pub parent_id: String,
    pub plan_id: String,
    pub billing_anchor: Option<Millis>,
    pub overage_enabled: bool,
    pub overage_cap: Micros,
    pub suspended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateAccount {
    pub actor: String,
    pub account_id: String,
    pub overage_enabled: Option<bool>,
    pub overage_cap: Option<Micros>,
    pub suspended: Option<bool>,
    pub parent_id: Option<String>,
    pub thresholds: Option<Vec<Micros>>,
    pub allowance_alert_percent: Option<i64>,
    /// (threshold, amount); amount 0 turns auto top-up off.
    pub top_up: Option<(Micros, Micros)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateGrant {
    pub actor: String,
    pub account_id: String,
    pub grant_id: String,
    pub kind: GrantKind,
    pub amount: Micros,
    pub priority: Option<i32>,
    pub effective_at: Option<Millis>,
    pub expires_at: Option<Millis>,
    pub unit_price: Micros,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub account_id: String,
    pub subject_id: String,
    pub amount: Micros,
    /// Priced lines instead of an amount.
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserve {
    pub account_id: String,
    pub reservation_id: String,
    pub subject_id: String,
    pub amount: Micros,
    /// 0 = all or nothing.
    pub min_amount: Micros,
    /// Already resolved against the server's default and bounds.
    pub ttl_seconds: i64,
    pub labels: BTreeMap<String, String>,
    /// Priced lines instead of an amount (then `amount` is 0).
    pub lines: Vec<Line>,
    pub card_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub account_id: String,
    pub reservation_id: String,
    pub amount: Micros,
    /// Some(capture id) for a partial capture that keeps the hold open.
    pub capture_id: Option<String>,
    pub overrun: Overrun,
    pub cost: Micros,
    /// Items instead of an amount: priced at the hold's prices, using its free units first.
    pub lines: Vec<ItemCount>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extend {
    pub account_id: String,
    pub reservation_id: String,
    pub ttl_seconds: i64,
}

// ---- answers --------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteOutcome {
    pub amount: Micros,
    pub affordable: bool,
    #[serde(default)]
    pub denial: Option<DenialReason>,
    pub balance: Balance,
    /// Priced lines, with the free units they would take.
    #[serde(default)]
    pub lines: Vec<HeldLine>,
    #[serde(default)]
    pub free_applied: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveOutcome {
    /// None when granted.
    #[serde(default)]
    pub denial: Option<DenialReason>,
    #[serde(default)]
    pub denial_detail: String,
    #[serde(default)]
    pub reservation: Option<Reservation>,
    pub balance: Balance,
    pub replayed: bool,
    /// With RATE_LIMITED: when the caller may try again.
    #[serde(default)]
    pub retry_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitOutcome {
    pub reservation: Reservation,
    pub effect: CommitEffect,
    pub balance: Balance,
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseOutcome {
    pub reservation: Reservation,
    pub released: Micros,
    pub balance: Balance,
    pub replayed: bool,
}

/// Maps kept as a flat list of pairs on the wire: Lua's msgpack encoder writes an empty table as an
/// array, so a map field must accept both shapes.
pub mod pairs {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
    use serde::{Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, V: Serialize>(
        map: &BTreeMap<String, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: DeserializeOwned>(
        d: D,
    ) -> Result<BTreeMap<String, V>, D::Error> {
        struct MapOrEmpty<V>(PhantomData<V>);
        impl<'de, V: DeserializeOwned> Visitor<'de> for MapOrEmpty<V> {
            type Value = BTreeMap<String, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map or an empty array")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = m.next_entry::<String, V>()? {
                    out.insert(k, v);
                }
                Ok(out)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                if s.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::custom(
                        "expected an empty array for a map",
                    ));
                }
                Ok(BTreeMap::new())
            }
        }
        d.deserialize_any(MapOrEmpty(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_print_exactly() {
        assert_eq!(credits(0), "0");
        assert_eq!(credits(1), "0.000001");
        assert_eq!(credits(1_500_000), "1.5");
        assert_eq!(credits(12_000_000), "12");
        assert_eq!(credits(-250_000), "-0.25");
        assert_eq!(credits(MAX_MICROS), "9007199254.740991");
    }
}
