//! Short human text for each answer: one line for the hot-path calls, small tables for
//! balances and grants. Amounts in credits ("1.5"), times in RFC 3339 UTC.

use std::fmt::Write as _;

use super::answer::Answer;
use prost_types::Timestamp;

use super::credits::{format_credits, MICROS_PER_CREDIT};
use super::reports;
use super::time;
use crate::proto::{
    Account, Balance, BudgetPeriod, CommitResponse, Decision, DenialReason, Grant, GrantKind,
    GrantState, QuoteResponse, RateCard, ReleaseResponse, Reservation, ReservationState,
    ReserveResponse, SubjectPolicy,
};

/// The text printed for an answer, ending with a newline.
pub fn render(answer: &Answer) -> String {
    let mut text = match answer {
        Answer::Account(account) => account_text(account),
        Answer::Grant(grant) => grant_text(grant),
        Answer::Grants(grants) => grants_text(grants),
        Answer::Reserve(response) => reserve_text(response),
        Answer::Commit {
            response,
            capture,
            cap_overrun,
        } => commit_text(response, capture.as_deref(), *cap_overrun),
        Answer::Release(response) => release_text(response),
        Answer::Extend(response) => extend_text(response.reservation.as_ref()),
        Answer::Reservation(reservation) => reservation_text(reservation),
        Answer::Balance(balance) => balance_text(balance),
        Answer::Quote(response) => quote_text(response),
        Answer::Policy { account, policy } => policy_text(account, policy),
        Answer::AccessRequested { account, subject } => {
            format!("spending access requested for subject {subject} on account {account}")
        }
        Answer::RateCard(card) => rate_card_text(card),
        Answer::Usage(report) => reports::text::usage(report),
        Answer::ProfitAndLoss(report) => reports::text::profit_and_loss(report),
        Answer::Entries(listing) => reports::text::entries(listing),
        Answer::Audit(listing) => reports::text::audit(listing),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// "GRANTED hold r1: 5 credits until 2026-11-22T10:00:00Z (available 95)", or
/// "DENIED INSUFFICIENT_CREDITS: needs 500, available 95 (available 95)".
fn reserve_text(response: &ReserveResponse) -> String {
    let mut line = if response.decision() == Decision::Granted {
        let reservation = response.reservation.clone().unwrap_or_default();
        let held = if reservation.granted_micros > 0 {
            reservation.granted_micros
        } else {
            reservation.held_micros
        };
        let amount = if reservation.requested_micros > held {
            format!(
                "{} of {}",
                format_credits(held),
                credits_phrase(reservation.requested_micros)
            )
        } else {
            credits_phrase(held)
        };
        format!(
            "GRANTED hold {}: {amount} until {}",
            reservation.reservation_id,
            format_timestamp(reservation.expires_at.as_ref(), "-")
        )
    } else {
        let mut line = format!("DENIED {}", denial_name(response.denial_reason()));
        if !response.denial_detail.is_empty() {
            let _ = write!(line, ": {}", response.denial_detail);
        }
        if response.retry_at.is_some() {
            let _ = write!(
                line,
                "; retry after {}",
                format_timestamp(response.retry_at.as_ref(), "-")
            );
        }
        line
    };
    push_available(&mut line, response.balance.as_ref());
    push_replayed(&mut line, response.replayed);
    line
}

/// "COMMITTED r1: charged 4 credits, released 1 (available 96)", or for a partial capture
/// "CAPTURED c1 on r1: charged 2 credits, 3 still held until ... (available 93)".
fn commit_text(response: &CommitResponse, capture: Option<&str>, cap_overrun: bool) -> String {
    let reservation = response.reservation.clone().unwrap_or_default();
    let id = &reservation.reservation_id;
    let mut line = match capture {
        Some(capture) => format!(
            "CAPTURED {capture} on {id}: charged {}",
            credits_phrase(response.charged_micros)
        ),
        None => format!(
            "COMMITTED {id}: charged {}",
            credits_phrase(response.charged_micros)
        ),
    };
    if response.released_micros != 0 {
        let _ = write!(
            line,
            ", released {}",
            format_credits(response.released_micros)
        );
    }
    // A late commit is all "above the hold" (the hold is gone); saying so adds nothing unless
    // the excess was left uncharged.
    if response.overrun_micros != 0 && (cap_overrun || !response.late) {
        let treatment = if cap_overrun {
            "not charged"
        } else {
            "charged"
        };
        let _ = write!(
            line,
            ", {} above the hold ({treatment})",
            format_credits(response.overrun_micros)
        );
    }
    if response.debt_micros != 0 {
        let _ = write!(
            line,
            ", {} became debt",
            format_credits(response.debt_micros)
        );
    }
    if reservation.state() == ReservationState::Held {
        let _ = write!(
            line,
            ", {} still held until {}",
            format_credits(reservation.held_micros),
            format_timestamp(reservation.expires_at.as_ref(), "-")
        );
    }
    if response.late {
        line.push_str(", late: the hold had expired");
    }
    push_available(&mut line, response.balance.as_ref());
    push_replayed(&mut line, response.replayed);
    line
}

/// "RELEASED r1: returned 5 credits (available 100)".
fn release_text(response: &ReleaseResponse) -> String {
    let id = response
        .reservation
        .as_ref()
        .map(|r| r.reservation_id.as_str())
        .unwrap_or_default();
    let mut line = format!(
        "RELEASED {id}: returned {}",
        credits_phrase(response.released_micros)
    );
    push_available(&mut line, response.balance.as_ref());
    push_replayed(&mut line, response.replayed);
    line
}

/// "EXTENDED r1: 5 credits held until 2026-11-22T10:05:00Z".
fn extend_text(reservation: Option<&Reservation>) -> String {
    let reservation = reservation.cloned().unwrap_or_default();
    format!(
        "EXTENDED {}: {} held until {}",
        reservation.reservation_id,
        credits_phrase(reservation.held_micros),
        format_timestamp(reservation.expires_at.as_ref(), "-")
    )
}

/// "AFFORDABLE: 5 credits (available 95)" or "NOT AFFORDABLE INSUFFICIENT_CREDITS: 500 credits ...".
fn quote_text(response: &QuoteResponse) -> String {
    let mut line = if response.affordable {
        "AFFORDABLE".to_string()
    } else {
        match response.denial_reason() {
            DenialReason::Unspecified => "NOT AFFORDABLE".to_string(),
            reason => format!("NOT AFFORDABLE {}", denial_name(reason)),
        }
    };
    let _ = write!(line, ": {}", credits_phrase(response.amount_micros));
    if response.free_quantity_applied != 0 {
        let _ = write!(line, " ({} free)", response.free_quantity_applied);
    }
    push_available(&mut line, response.balance.as_ref());
    line
}

fn push_available(line: &mut String, balance: Option<&Balance>) {
    if let Some(balance) = balance {
        let _ = write!(
            line,
            " (available {})",
            format_credits(balance.available_micros)
        );
    }
}

fn push_replayed(line: &mut String, replayed: bool) {
    if replayed {
        line.push_str(" [replayed: the first answer, nothing changed]");
    }
}

fn reservation_text(reservation: &Reservation) -> String {
    let labels = if reservation.labels.is_empty() {
        "-".to_string()
    } else {
        let mut pairs: Vec<_> = reservation
            .labels
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        pairs.sort();
        pairs.join(", ")
    };
    let mut text = fields(&[
        ("reservation", reservation.reservation_id.clone()),
        ("account", reservation.account_id.clone()),
        ("subject", or_dash(&reservation.subject_id)),
        (
            "state",
            reservation_state_name(reservation.state()).to_string(),
        ),
        ("requested", format_credits(reservation.requested_micros)),
        ("granted", format_credits(reservation.granted_micros)),
        ("held", format_credits(reservation.held_micros)),
        ("committed", format_credits(reservation.committed_micros)),
        (
            "created",
            format_timestamp(reservation.created_at.as_ref(), "-"),
        ),
        (
            "expires",
            format_timestamp(reservation.expires_at.as_ref(), "-"),
        ),
        ("late", yes_no(reservation.late).to_string()),
        ("labels", labels),
    ]);
    if !reservation.allocations.is_empty() {
        text.push('\n');
        let rows = reservation
            .allocations
            .iter()
            .map(|allocation| {
                vec![
                    allocation.grant_id.clone(),
                    format_credits(allocation.held_micros),
                    format_credits(allocation.committed_micros),
                ]
            })
            .collect();
        text.push_str(&table(
            &[
                Column::left("GRANT"),
                Column::right("HELD"),
                Column::right("COMMITTED"),
            ],
            rows,
        ));
    }
    text
}

fn balance_text(balance: &Balance) -> String {
    let overage = if !balance.overage_enabled {
        "off".to_string()
    } else {
        let cap = if balance.overage_cap_micros == 0 {
            "no cap".to_string()
        } else {
            format!("cap {}", format_credits(balance.overage_cap_micros))
        };
        format!(
            "on: used {} this period ({cap}), {} held",
            format_credits(balance.overage_used_micros),
            format_credits(balance.overage_held_micros)
        )
    };
    let period = match (&balance.period_start, &balance.period_end) {
        (None, None) => "-".to_string(),
        (start, end) => format!(
            "{} to {}",
            format_timestamp(start.as_ref(), "?"),
            format_timestamp(end.as_ref(), "?")
        ),
    };
    let mut text = fields(&[
        (
            "account",
            format!("{} (sequence {})", balance.account_id, balance.sequence),
        ),
        ("available", format_credits(balance.available_micros)),
        ("held", format_credits(balance.held_micros)),
        (
            "granted",
            format!(
                "{} remaining in live grants, holds included",
                format_credits(balance.granted_remaining_micros)
            ),
        ),
        ("debt", format_credits(balance.debt_micros)),
        ("overage", overage),
        ("period", period),
    ]);
    text.push('\n');
    if balance.grants.is_empty() {
        text.push_str("no live grants\n");
    } else {
        let rows = balance
            .grants
            .iter()
            .map(|grant| {
                vec![
                    grant.grant_id.clone(),
                    kind_name(grant.kind()).to_string(),
                    grant.priority.to_string(),
                    format_credits(grant.remaining_micros),
                    format_credits(grant.held_micros),
                    format_timestamp(grant.expires_at.as_ref(), "never"),
                ]
            })
            .collect();
        text.push_str(&table(
            &[
                Column::left("GRANT"),
                Column::left("KIND"),
                Column::right("PRIORITY"),
                Column::right("REMAINING"),
                Column::right("HELD"),
                Column::left("EXPIRES"),
            ],
            rows,
        ));
    }
    if !balance.budgets.is_empty() {
        let rows = balance
            .budgets
            .iter()
            .map(|b| {
                vec![
                    b.subject_id.clone(),
                    b.scope.clone(),
                    match b.period() {
                        BudgetPeriod::Day => "day".to_string(),
                        BudgetPeriod::BillingPeriod => "period".to_string(),
                    },
                    format_credits(b.limit_micros),
                    format_credits(b.used_micros),
                    format_credits(b.remaining_micros),
                ]
            })
            .collect();
        text.push('\n');
        text.push_str(&table(
            &[
                Column::left("BUDGET OF"),
                Column::left("SCOPE"),
                Column::left("PER"),
                Column::right("LIMIT"),
                Column::right("USED"),
                Column::right("LEFT"),
            ],
            rows,
        ));
    }
    text
}

fn account_text(account: &Account) -> String {
    let overage = account.overage.unwrap_or_default();
    let overage = match (overage.enabled, overage.cap_micros) {
        (false, 0) => "off".to_string(),
        (false, cap) => format!("off (cap {} when on)", format_credits(cap)),
        (true, 0) => "on, no cap".to_string(),
        (true, cap) => format!("on, cap {} per period", format_credits(cap)),
    };
    fields(&[
        ("account", account.account_id.clone()),
        ("parent", or_dash(&account.parent_id)),
        ("plan", or_dash(&account.plan_id)),
        ("overage", overage),
        ("suspended", yes_no(account.suspended).to_string()),
        (
            "billing anchor",
            format_timestamp(account.billing_anchor.as_ref(), "-"),
        ),
        (
            "created",
            format_timestamp(account.created_at.as_ref(), "-"),
        ),
        ("alert levels", alert_levels(&account.threshold_micros)),
        (
            "allowance alert",
            match account.allowance_alert_percent {
                0 => "75% used (default)".to_string(),
                p => format!("{p}% used"),
            },
        ),
        ("auto top-up", auto_top_up_text(account)),
    ])
}

fn alert_levels(levels: &[i64]) -> String {
    if levels.is_empty() {
        return "10000, 5000, 1000, 0 credits (default)".to_string();
    }
    let levels: Vec<String> = levels.iter().map(|&l| format_credits(l)).collect();
    format!("{} credits", levels.join(", "))
}

fn auto_top_up_text(account: &Account) -> String {
    match account.auto_top_up {
        Some(t) if t.amount_micros > 0 => format!(
            "{} when available falls to {}",
            credits_phrase(t.amount_micros),
            format_credits(t.threshold_micros)
        ),
        _ => "off".to_string(),
    }
}

/// The subject's rights, then its budgets and frequency caps.
fn policy_text(account: &str, policy: &SubjectPolicy) -> String {
    let subject = if policy.subject_id == "*" {
        "* (the whole account)".to_string()
    } else {
        policy.subject_id.clone()
    };
    let mut text = fields(&[
        ("account", account.to_string()),
        ("subject", subject),
        (
            "spending",
            if policy.spending_enabled {
                "enabled"
            } else {
                "disabled"
            }
            .to_string(),
        ),
    ]);
    if !policy.budgets.is_empty() {
        text.push('\n');
        let rows = policy
            .budgets
            .iter()
            .map(|b| {
                vec![
                    or_dash(&b.scope),
                    match b.period() {
                        crate::proto::BudgetPeriod::Day => "day",
                        crate::proto::BudgetPeriod::BillingPeriod => "billing period",
                    }
                    .to_string(),
                    format_credits(b.limit_micros),
                ]
            })
            .collect();
        text.push_str(&table(
            &[
                Column::left("BUDGET SCOPE"),
                Column::left("PERIOD"),
                Column::right("LIMIT"),
            ],
            rows,
        ));
    }
    if !policy.rate_limits.is_empty() {
        text.push('\n');
        let rows = policy
            .rate_limits
            .iter()
            .map(|r| {
                vec![
                    r.sku.clone(),
                    r.max_count.to_string(),
                    format!("{} s", r.window_seconds),
                ]
            })
            .collect();
        text.push_str(&table(
            &[
                Column::left("RATE LIMIT SKU"),
                Column::right("MAX"),
                Column::right("PER"),
            ],
            rows,
        ));
    }
    text
}

/// Version and top-up increment, then a table of SKUs and one of plans.
fn rate_card_text(card: &RateCard) -> String {
    let mut text = fields(&[
        ("rate card", card.version.clone()),
        ("currency", or_dash(&card.currency)),
        (
            "top-ups",
            match card.top_up_increment_micros {
                0 => "-".to_string(),
                inc => format!("in blocks of {}", credits_phrase(inc)),
            },
        ),
    ]);
    text.push('\n');
    let rows = card
        .skus
        .iter()
        .map(|sku| {
            let mut multipliers: Vec<String> = sku
                .multipliers
                .iter()
                .map(|(name, factor)| format!("{name} x{factor}"))
                .collect();
            multipliers.sort();
            vec![
                sku.sku.clone(),
                or_dash(&sku.unit),
                sku.price.clone(),
                sku.free_quantity.to_string(),
                or_dash(&multipliers.join(", ")),
            ]
        })
        .collect();
    text.push_str(&table(
        &[
            Column::left("SKU"),
            Column::left("UNIT"),
            Column::right("CREDITS/UNIT"),
            Column::right("FREE/PERIOD"),
            Column::left("MULTIPLIERS"),
        ],
        rows,
    ));
    text.push('\n');
    let rows = card
        .plans
        .iter()
        .map(|plan| {
            vec![
                plan.plan_id.clone(),
                format_credits(plan.allowance_micros),
                or_dash(&plan.monthly_price),
                or_dash(&plan.description),
            ]
        })
        .collect();
    text.push_str(&table(
        &[
            Column::left("PLAN"),
            Column::right("ALLOWANCE/PERIOD"),
            Column::right("MONTHLY PRICE"),
            Column::left("DESCRIPTION"),
        ],
        rows,
    ));
    text
}

fn grant_text(grant: &Grant) -> String {
    fields(&[
        ("grant", grant.grant_id.clone()),
        ("account", grant.account_id.clone()),
        ("kind", kind_name(grant.kind()).to_string()),
        ("state", grant_state_name(grant.state()).to_string()),
        ("amount", format_credits(grant.amount_micros)),
        ("remaining", format_credits(grant.remaining_micros)),
        ("held", format_credits(grant.held_micros)),
        ("spent", format_credits(grant.spent_micros)),
        ("expired", format_credits(grant.expired_micros)),
        ("voided", format_credits(grant.voided_micros)),
        ("priority", grant.priority.to_string()),
        (
            "effective",
            format_timestamp(grant.effective_at.as_ref(), "-"),
        ),
        (
            "expires",
            format_timestamp(grant.expires_at.as_ref(), "never"),
        ),
        ("unit price", format_credits(grant.unit_price_micros)),
        ("created", format_timestamp(grant.created_at.as_ref(), "-")),
    ])
}

fn grants_text(grants: &[Grant]) -> String {
    if grants.is_empty() {
        return "no grants\n".to_string();
    }
    let rows = grants
        .iter()
        .map(|grant| {
            vec![
                grant.grant_id.clone(),
                kind_name(grant.kind()).to_string(),
                grant_state_name(grant.state()).to_string(),
                grant.priority.to_string(),
                format_credits(grant.amount_micros),
                format_credits(grant.remaining_micros),
                format_credits(grant.held_micros),
                format_credits(grant.spent_micros),
                format_timestamp(grant.expires_at.as_ref(), "never"),
            ]
        })
        .collect();
    table(
        &[
            Column::left("GRANT"),
            Column::left("KIND"),
            Column::left("STATE"),
            Column::right("PRIORITY"),
            Column::right("AMOUNT"),
            Column::right("REMAINING"),
            Column::right("HELD"),
            Column::right("SPENT"),
            Column::left("EXPIRES"),
        ],
        rows,
    )
}

/// The kind as `--kind` spells it.
pub fn kind_name(kind: GrantKind) -> &'static str {
    match kind {
        GrantKind::Unspecified => "unspecified",
        GrantKind::Allowance => "allowance",
        GrantKind::Prepaid => "prepaid",
        GrantKind::TopUp => "top-up",
        GrantKind::Promo => "promo",
    }
}

fn grant_state_name(state: GrantState) -> &'static str {
    match state {
        GrantState::Unspecified => "UNSPECIFIED",
        GrantState::GrantActive => "ACTIVE",
        GrantState::GrantPending => "PENDING",
        GrantState::GrantExpired => "EXPIRED",
        GrantState::GrantVoided => "VOIDED",
    }
}

fn reservation_state_name(state: ReservationState) -> &'static str {
    match state {
        ReservationState::Unspecified => "UNSPECIFIED",
        other => other.as_str_name(),
    }
}

fn denial_name(reason: DenialReason) -> &'static str {
    match reason {
        DenialReason::Unspecified => "UNSPECIFIED",
        other => other.as_str_name(),
    }
}

/// "1 credit", "1.5 credits", "0 credits".
pub(super) fn credits_phrase(micros: i64) -> String {
    if micros == MICROS_PER_CREDIT {
        "1 credit".to_string()
    } else {
        format!("{} credits", format_credits(micros))
    }
}

/// Times to the second for people; `--json` keeps the server's full precision.
pub(super) fn format_timestamp(time: Option<&Timestamp>, missing: &str) -> String {
    let whole_second = time.map(|t| Timestamp {
        seconds: t.seconds,
        nanos: 0,
    });
    time::format_timestamp(whole_second.as_ref(), missing)
}

pub(super) fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text.to_string()
    }
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

/// "name    value" lines, values aligned.
fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (name, value) in pairs {
        let _ = writeln!(text, "{name:<width$}  {value}");
    }
    text
}

pub(super) struct Column {
    title: &'static str,
    right: bool,
}

impl Column {
    pub(super) fn left(title: &'static str) -> Self {
        Column {
            title,
            right: false,
        }
    }

    pub(super) fn right(title: &'static str) -> Self {
        Column { title, right: true }
    }
}

/// A plain-text table: a header row, then one row per entry; numbers right-aligned.
pub(super) fn table(columns: &[Column], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.title.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = columns.iter().map(|c| c.title.to_string()).collect();
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = columns
            .iter()
            .zip(&widths)
            .zip(row)
            .map(|((column, &width), cell)| {
                if column.right {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        let _ = writeln!(text, "{}", cells.join("  ").trim_end());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Allocation, GrantBalance, Overage};

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    /// 2026-11-22T10:00:00Z
    const T: i64 = 1_795_341_600;

    fn balance(available: i64) -> Option<Balance> {
        Some(Balance {
            account_id: "acme".into(),
            available_micros: available,
            ..Default::default()
        })
    }

    fn held(id: &str, requested: i64, granted: i64) -> Reservation {
        Reservation {
            reservation_id: id.into(),
            account_id: "acme".into(),
            state: ReservationState::Held as i32,
            held_micros: granted,
            requested_micros: requested,
            granted_micros: granted,
            expires_at: at(T),
            ..Default::default()
        }
    }

    #[test]
    fn a_granted_reserve_is_one_line() {
        let response = ReserveResponse {
            decision: Decision::Granted as i32,
            reservation: Some(held("r1", 5_000_000, 5_000_000)),
            balance: balance(95_000_000),
            ..Default::default()
        };
        assert_eq!(
            render(&Answer::Reserve(response)),
            "GRANTED hold r1: 5 credits until 2026-11-22T10:00:00Z (available 95)\n"
        );
    }

    #[test]
    fn one_credit_is_singular_and_times_drop_fractions_of_a_second() {
        let mut reservation = held("r1", 1_000_000, 1_000_000);
        reservation.expires_at = Some(Timestamp {
            seconds: T,
            nanos: 340_000_000,
        });
        let response = ReserveResponse {
            decision: Decision::Granted as i32,
            reservation: Some(reservation),
            ..Default::default()
        };
        assert_eq!(
            render(&Answer::Reserve(response)),
            "GRANTED hold r1: 1 credit until 2026-11-22T10:00:00Z\n"
        );
        assert_eq!(credits_phrase(0), "0 credits");
        assert_eq!(credits_phrase(500_000), "0.5 credits");
        assert_eq!(credits_phrase(1_000_001), "1.000001 credits");
    }

    #[test]
    fn a_smaller_hold_and_a_replay_say_so() {
        let response = ReserveResponse {
            decision: Decision::Granted as i32,
            reservation: Some(held("r2", 5_000_000, 2_500_000)),
            balance: balance(0),
            replayed: true,
            ..Default::default()
        };
        assert_eq!(
            render(&Answer::Reserve(response)),
            "GRANTED hold r2: 2.5 of 5 credits until 2026-11-22T10:00:00Z (available 0) \
             [replayed: the first answer, nothing changed]\n"
        );
    }

    #[test]
    fn a_denied_reserve_names_the_reason() {
        let response = ReserveResponse {
            decision: Decision::Denied as i32,
            denial_reason: DenialReason::InsufficientCredits as i32,
            denial_detail: "needs 500, has 95".into(),
            balance: balance(95_000_000),
            ..Default::default()
        };
        assert_eq!(
            render(&Answer::Reserve(response)),
            "DENIED INSUFFICIENT_CREDITS: needs 500, has 95 (available 95)\n"
        );
        let response = ReserveResponse {
            decision: Decision::Denied as i32,
            denial_reason: DenialReason::DebtOutstanding as i32,
            balance: balance(-3_250_000),
            ..Default::default()
        };
        assert_eq!(
            render(&Answer::Reserve(response)),
            "DENIED DEBT_OUTSTANDING (available -3.25)\n"
        );
    }

    #[test]
    fn a_commit_reports_charge_release_overrun_debt_and_lateness() {
        let mut reservation = held("r1", 5_000_000, 5_000_000);
        reservation.state = ReservationState::Committed as i32;
        reservation.held_micros = 0;
        let plain = CommitResponse {
            reservation: Some(reservation.clone()),
            charged_micros: 4_000_000,
            released_micros: 1_000_000,
            balance: balance(96_000_000),
            ..Default::default()
        };
        assert_eq!(
            render(&Answer::Commit {
                response: plain,
                capture: None,
                cap_overrun: false
            }),
            "COMMITTED r1: charged 4 credits, released 1 (available 96)\n"
        );
        let over = CommitResponse {
            reservation: Some(reservation.clone()),
            charged_micros: 8_000_000,
            overrun_micros: 3_000_000,
            debt_micros: 1_500_000,
            balance: balance(-1_500_000),
            ..Default::default()
        };
        assert_eq!(
            render(&Answer::Commit {
                response: over,
                capture: None,
                cap_overrun: false
            }),
            "COMMITTED r1: charged 8 credits, 3 above the hold (charged), 1.5 became debt \
             (available -1.5)\n"
        );
        let capped = CommitResponse {
            reservation: Some(reservation),
            charged_micros: 5_000_000,
            overrun_micros: 2_000_000,
            balance: balance(95_000_000),
            ..Default::default()
        };
        assert_eq!(
            render(&Answer::Commit {
                response: capped,
                capture: None,
                cap_overrun: true
            }),
            "COMMITTED r1: charged 5 credits, 2 above the hold (not charged) (available 95)\n"
        );
    }

    #[test]
    fn a_late_commit_says_so() {
        let mut reservation = held("r3", 1_000_000, 1_000_000);
        reservation.state = ReservationState::Committed as i32;
        reservation.held_micros = 0;
        let response = CommitResponse {
            reservation: Some(reservation),
            charged_micros: 1_000_000,
            overrun_micros: 1_000_000,
            late: true,
            balance: balance(2_000_000),
            replayed: true,
            ..Default::default()
        };
        assert_eq!(
            render(&Answer::Commit {
                response,
                capture: None,
                cap_overrun: false
            }),
            "COMMITTED r3: charged 1 credit, late: the hold had expired (available 2) \
             [replayed: the first answer, nothing changed]\n"
        );
    }

    #[test]
    fn a_partial_capture_says_what_is_still_held() {
        let mut reservation = held("r1", 5_000_000, 5_000_000);
        reservation.held_micros = 3_000_000;
        reservation.committed_micros = 2_000_000;
        let response = CommitResponse {
            reservation: Some(reservation),
            charged_micros: 2_000_000,
            balance: balance(93_000_000),
            ..Default::default()
        };
        assert_eq!(
            render(&Answer::Commit {
                response,
                capture: Some("c1".into()),
                cap_overrun: false
            }),
            "CAPTURED c1 on r1: charged 2 credits, 3 still held until 2026-11-22T10:00:00Z \
             (available 93)\n"
        );
    }

    #[test]
    fn release_extend_and_quote_lines() {
        let release = ReleaseResponse {
            reservation: Some(held("r1", 5_000_000, 5_000_000)),
            released_micros: 5_000_000,
            balance: balance(100_000_000),
            replayed: false,
        };
        assert_eq!(
            render(&Answer::Release(release)),
            "RELEASED r1: returned 5 credits (available 100)\n"
        );
        let extend = crate::proto::ExtendResponse {
            reservation: Some(held("r1", 5_000_000, 5_000_000)),
        };
        assert_eq!(
            render(&Answer::Extend(extend)),
            "EXTENDED r1: 5 credits held until 2026-11-22T10:00:00Z\n"
        );
        let quote = QuoteResponse {
            amount_micros: 500_000_000,
            affordable: false,
            denial_reason: DenialReason::InsufficientCredits as i32,
            balance: balance(95_000_000),
            ..Default::default()
        };
        assert_eq!(
            render(&Answer::Quote(quote)),
            "NOT AFFORDABLE INSUFFICIENT_CREDITS: 500 credits (available 95)\n"
        );
        let quote = QuoteResponse {
            amount_micros: 1_500_000,
            affordable: true,
            balance: balance(95_000_000),
            ..Default::default()
        };
        assert_eq!(
            render(&Answer::Quote(quote)),
            "AFFORDABLE: 1.5 credits (available 95)\n"
        );
    }

    #[test]
    fn a_balance_is_a_small_table() {
        let balance = Balance {
            account_id: "acme".into(),
            available_micros: 95_000_000,
            held_micros: 5_000_000,
            granted_remaining_micros: 100_000_000,
            overage_enabled: true,
            overage_cap_micros: 50_000_000,
            overage_used_micros: 250_000,
            period_start: at(T),
            period_end: at(T + 30 * 86_400),
            sequence: 7,
            grants: vec![
                GrantBalance {
                    grant_id: "plan-nov".into(),
                    kind: GrantKind::Allowance as i32,
                    remaining_micros: 15_000_000,
                    held_micros: 5_000_000,
                    expires_at: at(T + 30 * 86_400),
                    priority: 0,
                },
                GrantBalance {
                    grant_id: "inv-1".into(),
                    kind: GrantKind::TopUp as i32,
                    remaining_micros: 80_000_000,
                    priority: 30,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let expected = "\
account    acme (sequence 7)
available  95
held       5
granted    100 remaining in live grants, holds included
debt       0
overage    on: used 0.25 this period (cap 50), 0 held
period     2026-11-22T10:00:00Z to 2026-12-22T10:00:00Z

GRANT     KIND       PRIORITY  REMAINING  HELD  EXPIRES
plan-nov  allowance         0         15     5  2026-12-22T10:00:00Z
inv-1     top-up           30         80     0  never
";
        assert_eq!(render(&Answer::Balance(balance)), expected);
    }

    #[test]
    fn an_empty_balance_says_there_are_no_grants() {
        let text = render(&Answer::Balance(Balance {
            account_id: "new".into(),
            ..Default::default()
        }));
        assert!(text.contains("overage    off\n"), "{text}");
        assert!(text.ends_with("\nno live grants\n"), "{text}");
    }

    #[test]
    fn an_account() {
        let account = Account {
            account_id: "acme".into(),
            plan_id: "pro".into(),
            overage: Some(Overage {
                enabled: true,
                cap_micros: 0,
            }),
            created_at: at(T),
            billing_anchor: at(T),
            ..Default::default()
        };
        let expected = "\
account          acme
parent           -
plan             pro
overage          on, no cap
suspended        no
billing anchor   2026-11-22T10:00:00Z
created          2026-11-22T10:00:00Z
alert levels     10000, 5000, 1000, 0 credits (default)
allowance alert  75% used (default)
auto top-up      off
";
        assert_eq!(render(&Answer::Account(account.clone())), expected);
        let alerts = Account {
            threshold_micros: vec![500_000_000, 0],
            allowance_alert_percent: 80,
            auto_top_up: Some(crate::proto::AutoTopUp {
                threshold_micros: 100_000_000,
                amount_micros: 50_000_000,
            }),
            ..account
        };
        let text = render(&Answer::Account(alerts));
        assert!(text.contains("alert levels     500, 0 credits\n"), "{text}");
        assert!(text.contains("allowance alert  80% used\n"), "{text}");
        assert!(
            text.contains("auto top-up      50 credits when available falls to 100\n"),
            "{text}"
        );
    }

    #[test]
    fn a_rate_limited_reserve_says_when_to_retry() {
        let response = ReserveResponse {
            decision: Decision::Denied as i32,
            denial_reason: DenialReason::RateLimited as i32,
            denial_detail: "the account may use 2 * per 60 s; retry in 40 s".into(),
            retry_at: at(T + 40),
            ..Default::default()
        };
        let text = render(&Answer::Reserve(response));
        assert!(
            text.starts_with("DENIED RATE_LIMITED: the account may use 2 * per 60 s; retry in 40 s; retry after 2026-11-22T10:00:40Z"),
            "{text}"
        );
    }

    #[test]
    fn a_policy_and_a_rate_card() {
        let policy = SubjectPolicy {
            subject_id: "*".into(),
            spending_enabled: false,
            budgets: vec![crate::proto::Budget {
                scope: "label:project=alpha".into(),
                period: crate::proto::BudgetPeriod::Day as i32,
                limit_micros: 50_000_000,
            }],
            rate_limits: vec![crate::proto::RateLimit {
                sku: "image.standard".into(),
                max_count: 10,
                window_seconds: 60,
            }],
        };
        let text = render(&Answer::Policy {
            account: "acme".into(),
            policy,
        });
        let expected = "\
account   acme
subject   * (the whole account)
spending  disabled

BUDGET SCOPE         PERIOD  LIMIT
label:project=alpha  day        50

RATE LIMIT SKU  MAX   PER
image.standard   10  60 s
";
        assert_eq!(text, expected);

        let card = RateCard {
            version: "2026-01".into(),
            currency: "EUR".into(),
            top_up_increment_micros: 10_000_000,
            skus: vec![crate::proto::RateCardSku {
                sku: "image.standard".into(),
                unit: "image".into(),
                price: "5".into(),
                free_quantity: 0,
                multipliers: [("hd".to_string(), "2".to_string())].into(),
                ..Default::default()
            }],
            plans: vec![crate::proto::RateCardPlan {
                plan_id: "pro".into(),
                allowance_micros: 5_000_000_000,
                monthly_price: "29".into(),
                description: "Pro".into(),
            }],
        };
        let text = render(&Answer::RateCard(card));
        assert!(
            text.contains("top-ups    in blocks of 10 credits\n"),
            "{text}"
        );
        assert!(text.contains("image.standard  image"), "{text}");
        assert!(text.contains("hd x2"), "{text}");
        assert!(text.contains("pro               5000"), "{text}");
    }

    #[test]
    fn a_grant_and_a_grant_list() {
        let grant = Grant {
            grant_id: "inv-1".into(),
            account_id: "acme".into(),
            kind: GrantKind::Prepaid as i32,
            amount_micros: 100_000_000,
            remaining_micros: 90_000_000,
            spent_micros: 10_000_000,
            priority: 20,
            unit_price_micros: 12_000,
            state: GrantState::GrantActive as i32,
            ..Default::default()
        };
        let text = render(&Answer::Grant(grant.clone()));
        assert!(text.starts_with("grant       inv-1\n"), "{text}");
        assert!(text.contains("\nkind        prepaid\n"), "{text}");
        assert!(text.contains("\nstate       ACTIVE\n"), "{text}");
        assert!(text.contains("\nexpires     never\n"), "{text}");
        assert!(text.contains("\nunit price  0.012\n"), "{text}");
        let expected = "\
GRANT  KIND     STATE   PRIORITY  AMOUNT  REMAINING  HELD  SPENT  EXPIRES
inv-1  prepaid  ACTIVE        20     100         90     0     10  never
";
        assert_eq!(render(&Answer::Grants(vec![grant])), expected);
        assert_eq!(render(&Answer::Grants(vec![])), "no grants\n");
    }

    #[test]
    fn a_reservation_with_allocations() {
        let mut reservation = held("r1", 5_000_000, 5_000_000);
        reservation.subject_id = "u1".into();
        reservation.labels.insert("feature".into(), "grid".into());
        reservation.allocations = vec![
            Allocation {
                grant_id: "plan-nov".into(),
                held_micros: 4_000_000,
                committed_micros: 0,
            },
            Allocation {
                grant_id: "@overage".into(),
                held_micros: 1_000_000,
                committed_micros: 0,
            },
        ];
        let text = render(&Answer::Reservation(reservation));
        assert!(text.starts_with("reservation  r1\n"), "{text}");
        assert!(text.contains("\nstate        HELD\n"), "{text}");
        assert!(text.contains("\nlabels       feature=grid\n"), "{text}");
        assert!(
            text.ends_with(
                "\nGRANT     HELD  COMMITTED\nplan-nov     4          0\n@overage     1          0\n"
            ),
            "{text}"
        );
    }
}
