//! Input rules, applied before anything reaches the store. Each function turns a proto request into
//! the model's request, or refuses it with `INVALID_ARGUMENT` naming the proto field.
//!
//! - ids: 1–128 characters of `A–Z a–z 0–9 . _ - ~` (nothing that could break a Redis key or a
//!   hash tag); optional ids (`subject_id`, `parent_id`, `plan_id`) may be empty;
//! - amounts to reserve, quote or grant: 1 ≤ x < 2^53; a commit may charge 0;
//!   prices, costs and caps: 0 ≤ x < 2^53;
//! - `ttl_seconds`: 0 means the configured default (Reserve only), otherwise within [min, max];
//! - at most 16 labels, keys 1–64 characters, values up to 256 characters;
//! - `items` are priced by the rate card, which is not configured yet: refused.

use std::collections::{BTreeMap, HashMap};

use prost_types::Timestamp;

use super::convert;
use crate::error::{Error, Result};
use crate::model::{self, Micros, Millis, MAX_MICROS};
use crate::pricing::{Item as PricingItem, RateCard};
use crate::proto;

pub const MAX_ID_CHARS: usize = 128;
pub const MAX_LABELS: usize = 16;
pub const MAX_LABEL_KEY_CHARS: usize = 64;
pub const MAX_LABEL_VALUE_CHARS: usize = 256;
pub const MAX_PRIORITY: i32 = 1_000_000;
/// Latest accepted timestamp: 9999-12-31T23:59:59Z.
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// The hold TTL bounds of the deployment, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlLimits {
    pub min: i64,
    pub default: i64,
    pub max: i64,
}

impl Default for TtlLimits {
    fn default() -> Self {
        TtlLimits {
            min: 1,
            default: 300,
            max: 86_400,
        }
    }
}

/// Refuses a request whose encoding is larger than [`MAX_REQUEST_BYTES`](super::MAX_REQUEST_BYTES).
pub fn within_limit<M: prost::Message>(req: M) -> Result<M> {
    let len = req.encoded_len();
    if len > super::MAX_REQUEST_BYTES {
        return Err(Error::invalid(
            "request",
            format!(
                "{len} bytes is over the limit of {} bytes",
                super::MAX_REQUEST_BYTES
            ),
        ));
    }
    Ok(req)
}

impl TtlLimits {
    /// 0 becomes the default; anything else must lie within [min, max].
    pub fn resolve(&self, field: &str, ttl_seconds: i64) -> Result<i64> {
        if ttl_seconds == 0 {
            return Ok(self.default);
        }
        self.check(field, ttl_seconds)
    }

    /// Must lie within [min, max] (no default).
    pub fn check(&self, field: &str, ttl_seconds: i64) -> Result<i64> {
        if ttl_seconds < self.min || ttl_seconds > self.max {
            return Err(Error::invalid(
                field,
                format!(
                    "must be between {} and {} seconds, got {ttl_seconds}",
                    self.min, self.max
                ),
            ));
        }
        Ok(ttl_seconds)
    }
}

// ---- field rules ----------------------------------------------------------------------------

fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~')
}

/// A required id.
pub fn id(field: &str, value: &str) -> Result<String> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    optional_id(field, value)
}

/// An id that may be empty.
pub fn optional_id(field: &str, value: &str) -> Result<String> {
    if value.len() > MAX_ID_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_ID_CHARS} characters"),
        ));
    }
    if !value.chars().all(id_char) {
        return Err(Error::invalid(
            field,
            "may only contain A-Z a-z 0-9 . _ - ~",
        ));
    }
    Ok(value.to_string())
}

/// 1 ≤ x < 2^53.
pub fn positive_amount(field: &str, value: i64) -> Result<Micros> {
    if !(1..=MAX_MICROS).contains(&value) {
        return Err(Error::invalid(
            field,
            format!("must be between 1 and {MAX_MICROS} micro-credits, got {value}"),
        ));
    }
    Ok(value)
}

/// 0 ≤ x < 2^53.
pub fn amount_or_zero(field: &str, value: i64) -> Result<Micros> {
    if !(0..=MAX_MICROS).contains(&value) {
        return Err(Error::invalid(
            field,
            format!("must be between 0 and {MAX_MICROS}, got {value}"),
        ));
    }
    Ok(value)
}

pub fn labels(field: &str, labels: &HashMap<String, String>) -> Result<BTreeMap<String, String>> {
    if labels.len() > MAX_LABELS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_LABELS} labels, got {}", labels.len()),
        ));
    }
    for (k, v) in labels {
        let key_chars = k.chars().count();
        if key_chars == 0 || key_chars > MAX_LABEL_KEY_CHARS {
            return Err(Error::invalid(
                field,
                format!("label keys must be 1 to {MAX_LABEL_KEY_CHARS} characters"),
            ));
        }
        if v.chars().count() > MAX_LABEL_VALUE_CHARS {
            return Err(Error::invalid(
                field,
                format!(
                    "label values must be at most {MAX_LABEL_VALUE_CHARS} characters (key {k:?})"
                ),
            ));
        }
    }
    Ok(labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Items priced by the active rate card, as lines for the store; none without items.
pub fn priced_items(
    items: &[proto::Item],
    card: Option<&RateCard>,
) -> Result<(Vec<model::Line>, String)> {
    if items.is_empty() {
        return Ok((Vec::new(), String::new()));
    }
    let card = card.ok_or_else(|| {
        Error::invalid(
            "items",
            "no rate card is configured (creditd serve --pricing FILE)",
        )
    })?;
    let wanted: Vec<PricingItem> = items
        .iter()
        .map(|i| {
            PricingItem::new(i.sku.clone(), i.quantity).with_multipliers(i.multipliers.clone())
        })
        .collect();
    let lines = card
        .price(&wanted)?
        .into_iter()
        .map(|l| model::Line {
            sku: l.sku,
            quantity: l.quantity,
            price_num: l.unit_price.numerator(),
            price_den: l.unit_price.denominator(),
            free_per_period: l.free_quantity_per_period,
        })
        .collect();
    Ok((lines, card.version().to_string()))
}

/// The amount of a Reserve or Quote: an amount, or items (then 0 here and priced by the store).
fn requested_amount(value: i64, items: &[proto::Item]) -> Result<Micros> {
    match (value, items.is_empty()) {
        (0, false) => Ok(0),
        (_, false) => Err(Error::invalid(
            "items",
            "give amount_micros or items, not both",
        )),
        (0, true) => Err(Error::invalid(
            "amount_micros",
            "is required, or items priced by the rate card",
        )),
        (v, true) => positive_amount("amount_micros", v),
    }
}

/// An optional timestamp: valid seconds and nanos, between 1970 and 9999.
pub fn timestamp(field: &str, ts: Option<&Timestamp>) -> Result<Option<Millis>> {
    let Some(ts) = ts else { return Ok(None) };
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(Error::invalid(
            field,
            "nanos must be between 0 and 999999999",
        ));
    }
    if !(0..=MAX_TIMESTAMP_SECONDS).contains(&ts.seconds) {
        return Err(Error::invalid(
            field,
            "must be between 1970-01-01 and 9999-12-31",
        ));
    }
    Ok(Some(convert::millis(ts)))
}

pub fn priority(field: &str, value: Option<i32>) -> Result<Option<i32>> {
    match value {
        Some(p) if !(0..=MAX_PRIORITY).contains(&p) => Err(Error::invalid(
            field,
            format!("must be between 0 and {MAX_PRIORITY}, got {p}"),
        )),
        other => Ok(other),
    }
}

// ---- Credits requests -----------------------------------------------------------------------

pub fn quote(req: &proto::QuoteRequest, card: Option<&RateCard>) -> Result<model::Quote> {
    let account_id = id("account_id", &req.account_id)?;
    let subject_id = optional_id("subject_id", &req.subject_id)?;
    let (lines, _) = priced_items(&req.items, card)?;
    let amount = requested_amount(req.amount_micros, &req.items)?;
    Ok(model::Quote {
        account_id,
        subject_id,
        amount,
        lines,
    })
}

pub fn reserve(
    req: &proto::ReserveRequest,
    ttl: &TtlLimits,
    card: Option<&RateCard>,
) -> Result<model::Reserve> {
    let account_id = id("account_id", &req.account_id)?;
    let reservation_id = id("reservation_id", &req.reservation_id)?;
    let subject_id = optional_id("subject_id", &req.subject_id)?;
    let (lines, card_version) = priced_items(&req.items, card)?;
    let amount = requested_amount(req.amount_micros, &req.items)?;
    let min_amount = amount_or_zero("min_amount_micros", req.min_amount_micros)?;
    if min_amount > 0 && !req.items.is_empty() {
        return Err(Error::invalid(
            "min_amount_micros",
            "is for amounts, not items",
        ));
    }
    if min_amount > amount && req.items.is_empty() {
        return Err(Error::invalid(
            "min_amount_micros",
            "must not exceed amount_micros",
        ));
    }
    let ttl_seconds = ttl.resolve("ttl_seconds", req.ttl_seconds)?;
    let labels = labels("labels", &req.labels)?;
    Ok(model::Reserve {
        account_id,
        reservation_id,
        subject_id,
        amount,
        min_amount,
        ttl_seconds,
        labels,
        lines,
        card_version,
    })
}

pub fn commit(req: &proto::CommitRequest) -> Result<model::Commit> {
    let account_id = id("account_id", &req.account_id)?;
    let reservation_id = id("reservation_id", &req.reservation_id)?;
    let amount = amount_or_zero("amount_micros", req.amount_micros)?;
    if amount > 0 && !req.items.is_empty() {
        return Err(Error::invalid(
            "items",
            "give amount_micros or items, not both",
        ));
    }
    let mut lines = Vec::with_capacity(req.items.len());
    for (i, item) in req.items.iter().enumerate() {
        lines.push(model::ItemCount {
            sku: id(&format!("items[{i}].sku"), &item.sku)?,
            quantity: quantity(&format!("items[{i}].quantity"), item.quantity)?,
        });
    }
    let capture_id = match (req.keep_open, req.capture_id.is_empty()) {
        (true, true) => {
            return Err(Error::invalid(
                "capture_id",
                "is required with keep_open (it is the partial capture's idempotency key)",
            ))
        }
        (true, false) => Some(id("capture_id", &req.capture_id)?),
        (false, false) => {
            return Err(Error::invalid(
                "capture_id",
                "is only used with keep_open = true",
            ))
        }
        (false, true) => None,
    };
    Ok(model::Commit {
        account_id,
        reservation_id,
        amount,
        capture_id,
        overrun: convert::overrun(req.overrun)?,
        cost: amount_or_zero("cost_micros", req.cost_micros)?,
        lines,
    })
}

/// A quantity of units: 1 <= q < 2^53.
fn quantity(field: &str, q: i64) -> Result<i64> {
    if (1..=MAX_MICROS).contains(&q) {
        Ok(q)
    } else {
        Err(Error::invalid(field, "must be between 1 and 2^53 - 1"))
    }
}

/// Account and reservation ids of Release and GetReservation.
pub fn reservation_ref(account_id: &str, reservation_id: &str) -> Result<(String, String)> {
    Ok((
        id("account_id", account_id)?,
        id("reservation_id", reservation_id)?,
    ))
}

pub fn extend(req: &proto::ExtendRequest, ttl: &TtlLimits) -> Result<model::Extend> {
    let (account_id, reservation_id) = reservation_ref(&req.account_id, &req.reservation_id)?;
    Ok(model::Extend {
        account_id,
        reservation_id,
        ttl_seconds: ttl.check("ttl_seconds", req.ttl_seconds)?,
    })
}

/// The account, and the subject whose budgets the answer should list ("" = none).
pub fn get_balance(req: &proto::GetBalanceRequest) -> Result<(String, String)> {
    let account_id = id("account_id", &req.account_id)?;
    let subject_id = optional_id("subject_id", &req.subject_id)?;
    Ok((account_id, subject_id))
}

// ---- CreditAdmin requests -------------------------------------------------------------------

pub fn create_account(req: &proto::CreateAccountRequest) -> Result<model::CreateAccount> {
    let overage = req.overage.unwrap_or_default();
    Ok(model::CreateAccount {
        actor: String::new(),
        account_id: id("account_id", &req.account_id)?,
        parent_id: optional_id("parent_id", &req.parent_id)?,
        plan_id: optional_id("plan_id", &req.plan_id)?,
        billing_anchor: timestamp("billing_anchor", req.billing_anchor.as_ref())?,
        overage_enabled: overage.enabled,
        overage_cap: amount_or_zero("overage.cap_micros", overage.cap_micros)?,
        suspended: req.suspended,
    })
}

/// The alert settings of CreateAccount, as the UpdateAccount that applies them right after the
/// account is created; `None` when none is set.
pub fn create_account_alerts(
    req: &proto::CreateAccountRequest,
    top_up_increment: i64,
) -> Result<Option<model::UpdateAccount>> {
    let u = model::UpdateAccount {
        account_id: id("account_id", &req.account_id)?,
        thresholds: Some(thresholds("threshold_micros", &req.threshold_micros)?)
            .filter(|t| !t.is_empty()),
        allowance_alert_percent: Some(allowance_alert_percent(
            "allowance_alert_percent",
            req.allowance_alert_percent,
        )?)
        .filter(|&p| p != 0),
        top_up: req
            .auto_top_up
            .as_ref()
            .map(|t| auto_top_up("auto_top_up", t, top_up_increment))
            .transpose()?,
        ..Default::default()
    };
    let any = u.thresholds.is_some() || u.allowance_alert_percent.is_some() || u.top_up.is_some();
    Ok(any.then_some(u))
}

/// `top_up_increment`: the active rate card's (0 without a card or without an increment).
pub fn update_account(
    req: &proto::UpdateAccountRequest,
    top_up_increment: i64,
) -> Result<model::UpdateAccount> {
    let account_id = id("account_id", &req.account_id)?;
    if !req.set_thresholds && !req.threshold_micros.is_empty() {
        return Err(Error::invalid(
            "threshold_micros",
            "is only used with set_thresholds = true",
        ));
    }
    Ok(model::UpdateAccount {
        actor: String::new(),
        thresholds: req
            .set_thresholds
            .then(|| thresholds("threshold_micros", &req.threshold_micros))
            .transpose()?,
        allowance_alert_percent: req
            .allowance_alert_percent
            .map(|p| allowance_alert_percent("allowance_alert_percent", p))
            .transpose()?,
        top_up: req
            .auto_top_up
            .as_ref()
            .map(|t| auto_top_up("auto_top_up", t, top_up_increment))
            .transpose()?,
        account_id,
        overage_enabled: req.overage_enabled,
        overage_cap: req
            .overage_cap_micros
            .map(|c| amount_or_zero("overage_cap_micros", c))
            .transpose()?,
        suspended: req.suspended,
        parent_id: req
            .parent_id
            .as_deref()
            .map(|p| optional_id("parent_id", p))
            .transpose()?,
    })
}

pub fn create_grant(req: &proto::CreateGrantRequest) -> Result<model::CreateGrant> {
    let account_id = id("account_id", &req.account_id)?;
    let grant_id = id("grant_id", &req.grant_id)?;
    let kind = convert::grant_kind_from_proto(req.kind)?;
    let amount = positive_amount("amount_micros", req.amount_micros)?;
    let priority = priority("priority", req.priority)?;
    let effective_at = timestamp("effective_at", req.effective_at.as_ref())?;
    let expires_at = timestamp("expires_at", req.expires_at.as_ref())?;
    if let (Some(from), Some(to)) = (effective_at, expires_at) {
        if to <= from {
            return Err(Error::invalid(
                "expires_at",
                "must be later than effective_at",
            ));
        }
    }
    Ok(model::CreateGrant {
        actor: String::new(),
        account_id,
        grant_id,
        kind,
        amount,
        priority,
        effective_at,
        expires_at,
        unit_price: amount_or_zero("unit_price_micros", req.unit_price_micros)?,
    })
}

pub fn grant_ref(account_id: &str, grant_id: &str) -> Result<(String, String)> {
    Ok((id("account_id", account_id)?, id("grant_id", grant_id)?))
}

// ---- policies and alerts --------------------------------------------------------------------

pub const MAX_BUDGETS: usize = 16;
pub const MAX_RATE_LIMITS: usize = 16;
pub const MAX_THRESHOLDS: usize = 16;
pub const MAX_RATE_WINDOW_SECONDS: i64 = 31 * 86_400;
pub const MAX_NOTE_CHARS: usize = 256;

/// A subject id, or exactly `*` (the whole account).
pub fn subject(field: &str, value: &str) -> Result<String> {
    if value == model::policy::ACCOUNT_WIDE {
        return Ok(value.to_string());
    }
    id(field, value)
}

/// 1 ≤ x < 2^53 (a count, not an amount).
fn positive_count(field: &str, value: i64) -> Result<i64> {
    if !(1..=MAX_MICROS).contains(&value) {
        return Err(Error::invalid(
            field,
            format!("must be between 1 and {MAX_MICROS}, got {value}"),
        ));
    }
    Ok(value)
}

/// A budget scope: "" or "subject", "label:KEY=VALUE" (the label rules) or "sku:SKU" (an id).
pub fn budget_scope(field: &str, scope: &str) -> Result<String> {
    if scope.is_empty() || scope == "subject" {
        return Ok(scope.to_string());
    }
    if let Some(kv) = scope.strip_prefix("label:") {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(Error::invalid(field, "a label scope is label:KEY=VALUE"));
        };
        let label = HashMap::from([(k.to_string(), v.to_string())]);
        labels(field, &label)?;
        return Ok(scope.to_string());
    }
    if let Some(sku) = scope.strip_prefix("sku:") {
        id(field, sku)?;
        return Ok(scope.to_string());
    }
    Err(Error::invalid(
        field,
        format!("must be \"subject\", \"label:KEY=VALUE\" or \"sku:SKU\", got {scope:?}"),
    ))
}

fn budget_period(field: &str, value: i32) -> Result<model::BudgetPeriod> {
    match proto::BudgetPeriod::try_from(value) {
        Ok(proto::BudgetPeriod::BillingPeriod) => Ok(model::BudgetPeriod::BillingPeriod),
        Ok(proto::BudgetPeriod::Day) => Ok(model::BudgetPeriod::Day),
        Err(_) => Err(Error::invalid(field, "must be BILLING_PERIOD or DAY")),
    }
}

pub fn set_subject_policy(
    req: &proto::SetSubjectPolicyRequest,
) -> Result<(String, model::SubjectPolicy)> {
    let account_id = id("account_id", &req.account_id)?;
    let Some(p) = &req.policy else {
        return Err(Error::invalid("policy", "is required"));
    };
    let subject_id = subject("policy.subject_id", &p.subject_id)?;
    if p.budgets.len() > MAX_BUDGETS {
        return Err(Error::invalid(
            "policy.budgets",
            format!("at most {MAX_BUDGETS} budgets, got {}", p.budgets.len()),
        ));
    }
    if p.rate_limits.len() > MAX_RATE_LIMITS {
        return Err(Error::invalid(
            "policy.rate_limits",
            format!(
                "at most {MAX_RATE_LIMITS} rate limits, got {}",
                p.rate_limits.len()
            ),
        ));
    }
    let budgets = p
        .budgets
        .iter()
        .map(|b| {
            Ok(model::Budget {
                scope: budget_scope("policy.budgets.scope", &b.scope)?,
                period: budget_period("policy.budgets.period", b.period)?,
                limit: positive_amount("policy.budgets.limit_micros", b.limit_micros)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let rate_limits = p
        .rate_limits
        .iter()
        .map(|r| {
            let sku = if r.sku == "*" {
                r.sku.clone()
            } else {
                id("policy.rate_limits.sku", &r.sku)?
            };
            let window = r.window_seconds;
            if !(1..=MAX_RATE_WINDOW_SECONDS).contains(&window) {
                return Err(Error::invalid(
                    "policy.rate_limits.window_seconds",
                    format!("must be between 1 and {MAX_RATE_WINDOW_SECONDS}, got {window}"),
                ));
            }
            Ok(model::RateLimit {
                sku,
                max_count: positive_count("policy.rate_limits.max_count", r.max_count)?,
                window_seconds: window,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((
        account_id,
        model::SubjectPolicy {
            subject_id,
            spending_enabled: p.spending_enabled,
            budgets,
            rate_limits,
        },
    ))
}

pub fn get_subject_policy(req: &proto::GetSubjectPolicyRequest) -> Result<(String, String)> {
    Ok((
        id("account_id", &req.account_id)?,
        subject("subject_id", &req.subject_id)?,
    ))
}

/// Account, subject and note of RequestSpendingAccess (the subject is a real one, not `*`).
pub fn request_spending_access(
    req: &proto::RequestSpendingAccessRequest,
) -> Result<(String, String, String)> {
    let account_id = id("account_id", &req.account_id)?;
    let subject_id = id("subject_id", &req.subject_id)?;
    if req.note.chars().count() > MAX_NOTE_CHARS {
        return Err(Error::invalid(
            "note",
            format!("must be at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    Ok((account_id, subject_id, req.note.clone()))
}

/// Threshold levels, each 0 ≤ x < 2^53, at most 16; sorted descending without duplicates.
pub fn thresholds(field: &str, levels: &[i64]) -> Result<Vec<Micros>> {
    if levels.len() > MAX_THRESHOLDS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_THRESHOLDS} levels, got {}", levels.len()),
        ));
    }
    let mut out = levels
        .iter()
        .map(|&l| amount_or_zero(field, l))
        .collect::<Result<Vec<_>>>()?;
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.dedup();
    Ok(out)
}

/// 1..=100, or 0 for the default.
pub fn allowance_alert_percent(field: &str, value: i64) -> Result<i64> {
    if !(0..=100).contains(&value) {
        return Err(Error::invalid(
            field,
            format!("must be between 1 and 100 (0 = the default), got {value}"),
        ));
    }
    Ok(value)
}

/// (threshold, amount) of an auto top-up; the amount is a multiple of the rate card's top-up
/// increment when one is set (`top_up_increment` > 0).
pub fn auto_top_up(
    field: &str,
    t: &proto::AutoTopUp,
    top_up_increment: i64,
) -> Result<(Micros, Micros)> {
    let threshold = amount_or_zero(&format!("{field}.threshold_micros"), t.threshold_micros)?;
    let amount_field = format!("{field}.amount_micros");
    let amount = amount_or_zero(&amount_field, t.amount_micros)?;
    if top_up_increment > 0 && amount % top_up_increment != 0 {
        return Err(Error::invalid(
            &amount_field,
            format!(
                "must be a multiple of the rate card's top-up increment ({} credits), got {}",
                model::credits(top_up_increment),
                model::credits(amount)
            ),
        ));
    }
    Ok((threshold, amount))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TtlLimits = TtlLimits {
        min: 5,
        default: 300,
        max: 3600,
    };

    fn field_of(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    fn reserve_req() -> proto::ReserveRequest {
        proto::ReserveRequest {
            account_id: "acct-1".into(),
            reservation_id: "run_42".into(),
            amount_micros: 1_000_000,
            ..Default::default()
        }
    }

    fn commit_req() -> proto::CommitRequest {
        proto::CommitRequest {
            account_id: "acct-1".into(),
            reservation_id: "run_42".into(),
            amount_micros: 500,
            ..Default::default()
        }
    }

    fn grant_req() -> proto::CreateGrantRequest {
        proto::CreateGrantRequest {
            account_id: "acct-1".into(),
            grant_id: "inv.2024~01".into(),
            kind: proto::GrantKind::Prepaid as i32,
            amount_micros: 10_000_000,
            ..Default::default()
        }
    }

    fn labels_of(n: usize, key_len: usize, value_len: usize) -> HashMap<String, String> {
        (0..n)
            .map(|i| {
                let mut k = format!("{i:0>width$}", width = key_len.max(1));
                k.truncate(key_len);
                (k, "v".repeat(value_len))
            })
            .collect()
    }

    #[test]
    fn ids() {
        let long = "a".repeat(128);
        for ok in ["a", "A-z_0.9~", long.as_str()] {
            assert_eq!(id("account_id", ok).as_deref(), Ok(ok));
        }
        let too_long = "a".repeat(129);
        for bad in [
            "",
            too_long.as_str(),
            "a b",
            "a:b",
            "{tag}",
            "a/b",
            "é",
            "a\n",
            "a*",
        ] {
            assert_eq!(field_of(id("account_id", bad)), "account_id", "{bad:?}");
        }
        assert_eq!(optional_id("subject_id", "").as_deref(), Ok(""));
        assert_eq!(field_of(optional_id("subject_id", "x y")), "subject_id");
    }

    #[test]
    fn amounts() {
        assert_eq!(positive_amount("amount_micros", 1), Ok(1));
        assert_eq!(positive_amount("amount_micros", MAX_MICROS), Ok(MAX_MICROS));
        for bad in [0, -1, MAX_MICROS + 1, i64::MAX, i64::MIN] {
            assert_eq!(
                field_of(positive_amount("amount_micros", bad)),
                "amount_micros"
            );
        }
        assert_eq!(amount_or_zero("cost_micros", 0), Ok(0));
        assert_eq!(field_of(amount_or_zero("cost_micros", -1)), "cost_micros");
        assert_eq!(
            field_of(amount_or_zero("cost_micros", 1 << 53)),
            "cost_micros"
        );
    }

    #[test]
    fn ttl_resolution() {
        assert_eq!(LIMITS.resolve("ttl_seconds", 0), Ok(300));
        assert_eq!(LIMITS.resolve("ttl_seconds", 5), Ok(5));
        assert_eq!(LIMITS.resolve("ttl_seconds", 3600), Ok(3600));
        for bad in [4, 3601, -1] {
            assert_eq!(field_of(LIMITS.resolve("ttl_seconds", bad)), "ttl_seconds");
        }
        assert_eq!(field_of(LIMITS.check("ttl_seconds", 0)), "ttl_seconds");
    }

    #[test]
    fn reserve_table() {
        type Mutate = fn(&mut proto::ReserveRequest);
        let bad: &[(&str, Mutate, &str)] = &[
            ("no account", |r| r.account_id.clear(), "account_id"),
            ("bad account", |r| r.account_id = "a:b".into(), "account_id"),
            (
                "no reservation id",
                |r| r.reservation_id.clear(),
                "reservation_id",
            ),
            (
                "long reservation id",
                |r| r.reservation_id = "r".repeat(129),
                "reservation_id",
            ),
            ("bad subject", |r| r.subject_id = "u@x".into(), "subject_id"),
            ("zero amount", |r| r.amount_micros = 0, "amount_micros"),
            ("negative amount", |r| r.amount_micros = -5, "amount_micros"),
            ("2^53", |r| r.amount_micros = 1 << 53, "amount_micros"),
            (
                "items",
                |r| {
                    r.items.push(proto::Item {
                        sku: "grid.row".into(),
                        quantity: 3,
                        multipliers: vec![],
                    })
                },
                "items",
            ),
            (
                "min above amount",
                |r| r.min_amount_micros = 1_000_001,
                "min_amount_micros",
            ),
            (
                "negative min",
                |r| r.min_amount_micros = -1,
                "min_amount_micros",
            ),
            ("ttl below min", |r| r.ttl_seconds = 4, "ttl_seconds"),
            ("ttl above max", |r| r.ttl_seconds = 3601, "ttl_seconds"),
            ("negative ttl", |r| r.ttl_seconds = -1, "ttl_seconds"),
            ("17 labels", |r| r.labels = labels_of(17, 4, 1), "labels"),
            (
                "empty label key",
                |r| r.labels = labels_of(1, 0, 1),
                "labels",
            ),
            ("65-char key", |r| r.labels = labels_of(1, 65, 1), "labels"),
            (
                "257-char value",
                |r| r.labels = labels_of(1, 4, 257),
                "labels",
            ),
        ];
        for (name, mutate, field) in bad {
            let mut req = reserve_req();
            mutate(&mut req);
            assert_eq!(&field_of(reserve(&req, &LIMITS, None)), field, "{name}");
        }

        let mut req = reserve_req();
        req.subject_id = "user-7".into();
        req.min_amount_micros = 1_000_000;
        req.labels = labels_of(16, 64, 256);
        let ok = reserve(&req, &LIMITS, None).expect("valid");
        assert_eq!(ok.ttl_seconds, 300, "ttl 0 resolves to the default");
        assert_eq!(ok.labels.len(), 16);
        assert_eq!(ok.min_amount, 1_000_000);
        req.ttl_seconds = 60;
        assert_eq!(reserve(&req, &LIMITS, None).expect("valid").ttl_seconds, 60);
    }

    #[test]
    fn commit_table() {
        type Mutate = fn(&mut proto::CommitRequest);
        let bad: &[(&str, Mutate, &str)] = &[
            ("no account", |r| r.account_id.clear(), "account_id"),
            (
                "no reservation",
                |r| r.reservation_id.clear(),
                "reservation_id",
            ),
            ("negative amount", |r| r.amount_micros = -1, "amount_micros"),
            ("2^53", |r| r.amount_micros = 1 << 53, "amount_micros"),
            (
                "keep_open without capture",
                |r| r.keep_open = true,
                "capture_id",
            ),
            (
                "capture without keep_open",
                |r| r.capture_id = "c1".into(),
                "capture_id",
            ),
            (
                "bad capture id",
                |r| {
                    r.keep_open = true;
                    r.capture_id = "c 1".into();
                },
                "capture_id",
            ),
            ("unknown overrun", |r| r.overrun = 7, "overrun"),
            ("negative cost", |r| r.cost_micros = -1, "cost_micros"),
            (
                "items",
                |r| {
                    r.items.push(proto::Item {
                        sku: "x".into(),
                        quantity: 1,
                        multipliers: vec![],
                    })
                },
                "items",
            ),
        ];
        for (name, mutate, field) in bad {
            let mut req = commit_req();
            mutate(&mut req);
            assert_eq!(&field_of(commit(&req)), field, "{name}");
        }

        let mut req = commit_req();
        req.amount_micros = 0;
        let ok = commit(&req).expect("a commit may charge nothing");
        assert_eq!(
            (ok.amount, ok.capture_id, ok.overrun),
            (0, None, model::Overrun::Charge)
        );
        req.keep_open = true;
        req.capture_id = "part-1".into();
        req.overrun = proto::Overrun::Cap as i32;
        let ok = commit(&req).expect("valid partial capture");
        assert_eq!(ok.capture_id.as_deref(), Some("part-1"));
        assert_eq!(ok.overrun, model::Overrun::Cap);
    }

    #[test]
    fn quote_extend_balance() {
        let q = proto::QuoteRequest {
            account_id: "a".into(),
            amount_micros: 0,
            ..Default::default()
        };
        assert_eq!(field_of(quote(&q, None)), "amount_micros");
        let q = proto::QuoteRequest {
            amount_micros: 7,
            ..q
        };
        assert_eq!(quote(&q, None).expect("valid").amount, 7);

        let e = proto::ExtendRequest {
            account_id: "a".into(),
            reservation_id: "r".into(),
            ttl_seconds: 0,
        };
        assert_eq!(
            field_of(extend(&e, &LIMITS)),
            "ttl_seconds",
            "extend needs a ttl"
        );
        let e = proto::ExtendRequest {
            ttl_seconds: 60,
            ..e
        };
        assert_eq!(extend(&e, &LIMITS).expect("valid").ttl_seconds, 60);

        let b = proto::GetBalanceRequest {
            account_id: "a".into(),
            subject_id: "bad subject".into(),
        };
        assert_eq!(field_of(get_balance(&b)), "subject_id");
        assert_eq!(field_of(reservation_ref("a", "")), "reservation_id");
        assert_eq!(field_of(grant_ref("a", "g/1")), "grant_id");
    }

    #[test]
    fn grant_table() {
        type Mutate = fn(&mut proto::CreateGrantRequest);
        let ts = |seconds| Some(Timestamp { seconds, nanos: 0 });
        let bad: &[(&str, Mutate, &str)] = &[
            ("no grant id", |r| r.grant_id.clear(), "grant_id"),
            ("unspecified kind", |r| r.kind = 0, "kind"),
            ("unknown kind", |r| r.kind = 99, "kind"),
            ("zero amount", |r| r.amount_micros = 0, "amount_micros"),
            ("2^53", |r| r.amount_micros = 1 << 53, "amount_micros"),
            ("negative priority", |r| r.priority = Some(-1), "priority"),
            (
                "huge priority",
                |r| r.priority = Some(1_000_001),
                "priority",
            ),
            (
                "negative unit price",
                |r| r.unit_price_micros = -1,
                "unit_price_micros",
            ),
            (
                "bad nanos",
                |r| {
                    r.effective_at = Some(Timestamp {
                        seconds: 1,
                        nanos: -1,
                    })
                },
                "effective_at",
            ),
            (
                "year 10000",
                |r| {
                    r.expires_at = Some(Timestamp {
                        seconds: MAX_TIMESTAMP_SECONDS + 1,
                        nanos: 0,
                    })
                },
                "expires_at",
            ),
            (
                "expires before effective",
                |r| {
                    r.effective_at = Some(Timestamp {
                        seconds: 2_000_000_000,
                        nanos: 0,
                    });
                    r.expires_at = Some(Timestamp {
                        seconds: 1_999_999_999,
                        nanos: 0,
                    });
                },
                "expires_at",
            ),
        ];
        for (name, mutate, field) in bad {
            let mut req = grant_req();
            mutate(&mut req);
            assert_eq!(&field_of(create_grant(&req)), field, "{name}");
        }
        let mut req = grant_req();
        req.priority = Some(1_000_000);
        req.effective_at = ts(1_700_000_000);
        req.expires_at = Some(Timestamp {
            seconds: 1_800_000_000,
            nanos: 250_000_000,
        });
        let ok = create_grant(&req).expect("valid");
        assert_eq!(ok.kind, model::GrantKind::Prepaid);
        assert_eq!(ok.priority, Some(1_000_000));
        assert_eq!(ok.effective_at, Some(1_700_000_000_000));
        assert_eq!(ok.expires_at, Some(1_800_000_000_250));
    }

    #[test]
    fn account_requests() {
        let mut req = proto::CreateAccountRequest {
            account_id: "org-1".into(),
            overage: Some(proto::Overage {
                enabled: true,
                cap_micros: -1,
            }),
            ..Default::default()
        };
        assert_eq!(field_of(create_account(&req)), "overage.cap_micros");
        req.overage = None;
        req.plan_id = "pro plan".into();
        assert_eq!(field_of(create_account(&req)), "plan_id");
        req.plan_id = "pro".into();
        req.parent_id = "cust:1".into();
        assert_eq!(field_of(create_account(&req)), "parent_id");
        req.parent_id.clear();
        let ok = create_account(&req).expect("valid");
        assert_eq!((ok.overage_enabled, ok.overage_cap), (false, 0));

        let upd = proto::UpdateAccountRequest {
            account_id: "org-1".into(),
            overage_cap_micros: Some(1 << 53),
            ..Default::default()
        };
        assert_eq!(field_of(update_account(&upd, 0)), "overage_cap_micros");
        let upd = proto::UpdateAccountRequest {
            account_id: "org-1".into(),
            suspended: Some(true),
            parent_id: Some(String::new()),
            ..Default::default()
        };
        let ok = update_account(&upd, 0).expect("valid");
        assert_eq!(ok.suspended, Some(true));
        assert_eq!(ok.overage_enabled, None, "unset fields stay unset");
        assert_eq!(ok.parent_id.as_deref(), Some(""));
    }

    #[test]
    fn policy_table() {
        type Mutate = fn(&mut proto::SubjectPolicy);
        let budget = |scope: &str, limit| proto::Budget {
            scope: scope.into(),
            period: 0,
            limit_micros: limit,
        };
        let rl = |sku: &str, max_count, window_seconds| proto::RateLimit {
            sku: sku.into(),
            max_count,
            window_seconds,
        };
        let _ = (budget, rl);
        let bad: &[(&str, Mutate, &str)] = &[
            ("no subject", |p| p.subject_id.clear(), "policy.subject_id"),
            (
                "star prefix",
                |p| p.subject_id = "*x".into(),
                "policy.subject_id",
            ),
            (
                "17 budgets",
                |p| {
                    p.budgets = vec![
                        proto::Budget {
                            limit_micros: 1,
                            ..Default::default()
                        };
                        17
                    ]
                },
                "policy.budgets",
            ),
            (
                "17 rate limits",
                |p| {
                    p.rate_limits = vec![
                        proto::RateLimit {
                            sku: "*".into(),
                            max_count: 1,
                            window_seconds: 1
                        };
                        17
                    ]
                },
                "policy.rate_limits",
            ),
            (
                "zero limit",
                |p| p.budgets = vec![proto::Budget::default()],
                "policy.budgets.limit_micros",
            ),
            (
                "2^53 limit",
                |p| {
                    p.budgets = vec![proto::Budget {
                        limit_micros: 1 << 53,
                        ..Default::default()
                    }]
                },
                "policy.budgets.limit_micros",
            ),
            (
                "unknown period",
                |p| {
                    p.budgets = vec![proto::Budget {
                        period: 9,
                        limit_micros: 1,
                        ..Default::default()
                    }]
                },
                "policy.budgets.period",
            ),
            (
                "unknown scope",
                |p| {
                    p.budgets = vec![proto::Budget {
                        scope: "team".into(),
                        limit_micros: 1,
                        ..Default::default()
                    }]
                },
                "policy.budgets.scope",
            ),
            (
                "label without =",
                |p| {
                    p.budgets = vec![proto::Budget {
                        scope: "label:project".into(),
                        limit_micros: 1,
                        ..Default::default()
                    }]
                },
                "policy.budgets.scope",
            ),
            (
                "empty label key",
                |p| {
                    p.budgets = vec![proto::Budget {
                        scope: "label:=x".into(),
                        limit_micros: 1,
                        ..Default::default()
                    }]
                },
                "policy.budgets.scope",
            ),
            (
                "bad sku scope",
                |p| {
                    p.budgets = vec![proto::Budget {
                        scope: "sku:a b".into(),
                        limit_micros: 1,
                        ..Default::default()
                    }]
                },
                "policy.budgets.scope",
            ),
            (
                "bad sku",
                |p| {
                    p.rate_limits = vec![proto::RateLimit {
                        sku: "a:b".into(),
                        max_count: 1,
                        window_seconds: 1,
                    }]
                },
                "policy.rate_limits.sku",
            ),
            (
                "zero count",
                |p| {
                    p.rate_limits = vec![proto::RateLimit {
                        sku: "*".into(),
                        max_count: 0,
                        window_seconds: 1,
                    }]
                },
                "policy.rate_limits.max_count",
            ),
            (
                "zero window",
                |p| {
                    p.rate_limits = vec![proto::RateLimit {
                        sku: "*".into(),
                        max_count: 1,
                        window_seconds: 0,
                    }]
                },
                "policy.rate_limits.window_seconds",
            ),
            (
                "window over 31 days",
                |p| {
                    p.rate_limits = vec![proto::RateLimit {
                        sku: "*".into(),
                        max_count: 1,
                        window_seconds: 31 * 86_400 + 1,
                    }]
                },
                "policy.rate_limits.window_seconds",
            ),
        ];
        let good = || proto::SubjectPolicy {
            subject_id: "user-1".into(),
            spending_enabled: true,
            ..Default::default()
        };
        for (name, mutate, field) in bad {
            let mut p = good();
            mutate(&mut p);
            let req = proto::SetSubjectPolicyRequest {
                account_id: "a".into(),
                policy: Some(p),
            };
            assert_eq!(&field_of(set_subject_policy(&req)), field, "{name}");
        }
        let none = proto::SetSubjectPolicyRequest {
            account_id: "a".into(),
            policy: None,
        };
        assert_eq!(field_of(set_subject_policy(&none)), "policy");

        let mut p = good();
        p.subject_id = "*".into();
        p.budgets = vec![
            budget("", 1),
            budget("subject", MAX_MICROS),
            budget("label:project=alpha", 5),
            budget("sku:video.export", 5),
        ];
        p.rate_limits = vec![rl("*", 1, 1), rl("image.standard", MAX_MICROS, 31 * 86_400)];
        let req = proto::SetSubjectPolicyRequest {
            account_id: "a".into(),
            policy: Some(p),
        };
        let (account, policy) = set_subject_policy(&req).expect("valid");
        assert_eq!((account.as_str(), policy.subject_id.as_str()), ("a", "*"));
        assert_eq!(policy.budgets.len(), 4);
        assert_eq!(policy.rate_limits[1].window_seconds, 31 * 86_400);

        let get = proto::GetSubjectPolicyRequest {
            account_id: "a".into(),
            subject_id: "**".into(),
        };
        assert_eq!(field_of(get_subject_policy(&get)), "subject_id");
        let ask = proto::RequestSpendingAccessRequest {
            account_id: "a".into(),
            subject_id: "*".into(),
            note: String::new(),
        };
        assert_eq!(field_of(request_spending_access(&ask)), "subject_id");
        let ask = proto::RequestSpendingAccessRequest {
            subject_id: "u1".into(),
            note: "é".repeat(257),
            ..ask
        };
        assert_eq!(field_of(request_spending_access(&ask)), "note");
        let ask = proto::RequestSpendingAccessRequest {
            note: "é".repeat(256),
            ..ask
        };
        assert!(request_spending_access(&ask).is_ok());
    }

    #[test]
    fn alert_settings() {
        let upd = |f: fn(&mut proto::UpdateAccountRequest)| {
            let mut r = proto::UpdateAccountRequest {
                account_id: "org-1".into(),
                ..Default::default()
            };
            f(&mut r);
            r
        };
        type Mutate = fn(&mut proto::UpdateAccountRequest);
        let bad: &[(&str, Mutate, &str)] = &[
            (
                "levels without set",
                |r| r.threshold_micros = vec![1],
                "threshold_micros",
            ),
            (
                "17 levels",
                |r| {
                    r.set_thresholds = true;
                    r.threshold_micros = (0..17).collect();
                },
                "threshold_micros",
            ),
            (
                "negative level",
                |r| {
                    r.set_thresholds = true;
                    r.threshold_micros = vec![-1];
                },
                "threshold_micros",
            ),
            (
                "2^53 level",
                |r| {
                    r.set_thresholds = true;
                    r.threshold_micros = vec![1 << 53];
                },
                "threshold_micros",
            ),
            (
                "101 %",
                |r| r.allowance_alert_percent = Some(101),
                "allowance_alert_percent",
            ),
            (
                "-1 %",
                |r| r.allowance_alert_percent = Some(-1),
                "allowance_alert_percent",
            ),
            (
                "negative top-up threshold",
                |r| {
                    r.auto_top_up = Some(proto::AutoTopUp {
                        threshold_micros: -1,
                        amount_micros: 0,
                    })
                },
                "auto_top_up.threshold_micros",
            ),
            (
                "2^53 top-up",
                |r| {
                    r.auto_top_up = Some(proto::AutoTopUp {
                        threshold_micros: 0,
                        amount_micros: 1 << 53,
                    })
                },
                "auto_top_up.amount_micros",
            ),
            (
                "not a multiple of the increment",
                |r| {
                    r.auto_top_up = Some(proto::AutoTopUp {
                        threshold_micros: 0,
                        amount_micros: 15_000_000,
                    })
                },
                "auto_top_up.amount_micros",
            ),
        ];
        for (name, mutate, field) in bad {
            assert_eq!(
                &field_of(update_account(&upd(*mutate), 10_000_000)),
                field,
                "{name}"
            );
        }
        let ok = update_account(
            &upd(|r| {
                r.set_thresholds = true;
                r.threshold_micros = vec![0, 5, 10, 5];
                r.allowance_alert_percent = Some(100);
                r.auto_top_up = Some(proto::AutoTopUp {
                    threshold_micros: 7,
                    amount_micros: 20_000_000,
                });
            }),
            10_000_000,
        )
        .expect("valid");
        assert_eq!(ok.thresholds, Some(vec![10, 5, 0]));
        assert_eq!(ok.allowance_alert_percent, Some(100));
        assert_eq!(ok.top_up, Some((7, 20_000_000)));
        let unchanged = update_account(&upd(|_| {}), 0).expect("valid");
        assert_eq!((unchanged.thresholds, unchanged.top_up), (None, None));
        let cleared = update_account(&upd(|r| r.set_thresholds = true), 0).expect("valid");
        assert_eq!(cleared.thresholds, Some(vec![]));
        let any_amount = upd(|r| {
            r.auto_top_up = Some(proto::AutoTopUp {
                threshold_micros: 0,
                amount_micros: 15_000_000,
            })
        });
        assert!(
            update_account(&any_amount, 0).is_ok(),
            "no card, no increment"
        );

        let create = proto::CreateAccountRequest {
            account_id: "org-1".into(),
            ..Default::default()
        };
        assert_eq!(create_account_alerts(&create, 0), Ok(None));
        let create = proto::CreateAccountRequest {
            allowance_alert_percent: 200,
            ..create
        };
        assert_eq!(
            field_of(create_account_alerts(&create, 0)),
            "allowance_alert_percent"
        );
    }
}
