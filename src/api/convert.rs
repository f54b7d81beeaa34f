//! Conversions between the proto messages and the model: times (Timestamp <-> Unix ms), enums,
//! and the answers (Reservation, Balance, Grant, Account).

use prost_types::Timestamp;

use crate::error::{Error, Result};
use crate::model::{self, Millis};
use crate::proto;

// ---- times ----------------------------------------------------------------------------------

pub fn timestamp(ms: Millis) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Unix milliseconds of a timestamp already checked by `validate::timestamp` (sub-millisecond
/// precision is dropped).
pub fn millis(ts: &Timestamp) -> Millis {
    ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000
}

// ---- enums ----------------------------------------------------------------------------------

pub fn grant_kind_from_proto(value: i32) -> Result<model::GrantKind> {
    match proto::GrantKind::try_from(value) {
        Ok(proto::GrantKind::Allowance) => Ok(model::GrantKind::Allowance),
        Ok(proto::GrantKind::Prepaid) => Ok(model::GrantKind::Prepaid),
        Ok(proto::GrantKind::TopUp) => Ok(model::GrantKind::TopUp),
        Ok(proto::GrantKind::Promo) => Ok(model::GrantKind::Promo),
        Ok(proto::GrantKind::Unspecified) | Err(_) => Err(Error::invalid(
            "kind",
            "must be ALLOWANCE, PREPAID, TOP_UP or PROMO",
        )),
    }
}

pub fn grant_kind(kind: model::GrantKind) -> proto::GrantKind {
    match kind {
        model::GrantKind::Allowance => proto::GrantKind::Allowance,
        model::GrantKind::Prepaid => proto::GrantKind::Prepaid,
        model::GrantKind::TopUp => proto::GrantKind::TopUp,
        model::GrantKind::Promo => proto::GrantKind::Promo,
    }
}

pub fn grant_state(state: model::GrantState) -> proto::GrantState {
    match state {
        model::GrantState::Active => proto::GrantState::GrantActive,
        model::GrantState::Pending => proto::GrantState::GrantPending,
        model::GrantState::Expired => proto::GrantState::GrantExpired,
        model::GrantState::Voided => proto::GrantState::GrantVoided,
    }
}

pub fn reservation_state(state: model::ReservationState) -> proto::ReservationState {
    match state {
        model::ReservationState::Held => proto::ReservationState::Held,
        model::ReservationState::Committed => proto::ReservationState::Committed,
        model::ReservationState::Released => proto::ReservationState::Released,
        model::ReservationState::Expired => proto::ReservationState::Expired,
    }
}

pub fn denial_reason(reason: Option<model::DenialReason>) -> proto::DenialReason {
    use model::DenialReason as M;
    use proto::DenialReason as P;
    match reason {
        None => P::Unspecified,
        Some(M::InsufficientCredits) => P::InsufficientCredits,
        Some(M::BudgetLimitReached) => P::BudgetLimitReached,
        Some(M::SpendingDisabled) => P::SpendingDisabled,
        Some(M::RateLimited) => P::RateLimited,
        Some(M::AccountSuspended) => P::AccountSuspended,
        Some(M::OverageCapReached) => P::OverageCapReached,
        Some(M::DebtOutstanding) => P::DebtOutstanding,
    }
}

pub fn overrun(value: i32) -> Result<model::Overrun> {
    match proto::Overrun::try_from(value) {
        Ok(proto::Overrun::Charge) => Ok(model::Overrun::Charge),
        Ok(proto::Overrun::Cap) => Ok(model::Overrun::Cap),
        Err(_) => Err(Error::invalid(
            "overrun",
            "must be OVERRUN_CHARGE or OVERRUN_CAP",
        )),
    }
}

// ---- answers --------------------------------------------------------------------------------

pub fn reservation(r: model::Reservation) -> proto::Reservation {
    proto::Reservation {
        state: reservation_state(r.state) as i32,
        held_micros: r.held,
        committed_micros: r.committed,
        expires_at: Some(timestamp(r.expires_at)),
        allocations: r
            .allocations
            .into_iter()
            .map(|a| proto::Allocation {
                grant_id: a.grant_id,
                held_micros: a.held,
                committed_micros: a.committed,
            })
            .collect(),
        labels: r.labels.into_iter().collect(),
        created_at: Some(timestamp(r.created_at)),
        requested_micros: r.requested,
        granted_micros: r.granted,
        late: r.late,
        items: r.lines.iter().map(priced_item).collect(),
        rate_card_version: r.card_version,
        reservation_id: r.reservation_id,
        account_id: r.account_id,
        subject_id: r.subject_id,
    }
}

pub fn balance(b: model::Balance) -> proto::Balance {
    proto::Balance {
        account_id: b.account_id,
        available_micros: b.available,
        held_micros: b.held,
        granted_remaining_micros: b.granted_remaining,
        debt_micros: b.debt,
        overage_used_micros: b.overage_used,
        overage_cap_micros: b.overage_cap,
        period_start: Some(timestamp(b.period_start)),
        period_end: Some(timestamp(b.period_end)),
        grants: b
            .grants
            .into_iter()
            .map(|g| proto::GrantBalance {
                kind: grant_kind(g.kind) as i32,
                remaining_micros: g.remaining,
                expires_at: g.expires_at.map(timestamp),
                held_micros: g.held,
                priority: g.priority,
                grant_id: g.grant_id,
            })
            .collect(),
        overage_enabled: b.overage_enabled,
        overage_held_micros: b.overage_held,
        sequence: b.sequence,
        overage_spent_total_micros: b.overage_spent_total,
        budgets: b
            .budgets
            .into_iter()
            .map(|u| proto::BudgetStatus {
                remaining_micros: (u.limit - u.used).max(0),
                period: budget_period(u.period) as i32,
                subject_id: u.owner,
                scope: u.scope,
                limit_micros: u.limit,
                used_micros: u.used,
            })
            .collect(),
    }
}

/// A grant as seen at `now` (its state depends on the time).
pub fn grant(g: model::Grant, account_id: &str, now: Millis) -> proto::Grant {
    proto::Grant {
        state: grant_state(g.state(now)) as i32,
        account_id: account_id.to_string(),
        kind: grant_kind(g.kind) as i32,
        amount_micros: g.amount,
        remaining_micros: g.remaining,
        priority: g.priority,
        effective_at: Some(timestamp(g.effective_at)),
        expires_at: g.expires_at.map(timestamp),
        unit_price_micros: g.unit_price,
        held_micros: g.held,
        spent_micros: g.spent,
        expired_micros: g.expired,
        voided_micros: g.voided,
        created_at: Some(timestamp(g.created_at)),
        grant_id: g.grant_id,
    }
}

pub fn account(a: model::Account) -> proto::Account {
    proto::Account {
        account_id: a.account_id,
        parent_id: a.parent_id,
        plan_id: a.plan_id,
        billing_anchor: Some(timestamp(a.billing_anchor)),
        overage: Some(proto::Overage {
            enabled: a.overage_enabled,
            cap_micros: a.overage_cap,
        }),
        suspended: a.suspended,
        created_at: Some(timestamp(a.created_at)),
        threshold_micros: a.thresholds,
        allowance_alert_percent: a.allowance_alert_percent,
        auto_top_up: Some(proto::AutoTopUp {
            threshold_micros: a.top_up_threshold,
            amount_micros: a.top_up_amount,
        }),
    }
}

pub fn budget_period(p: model::BudgetPeriod) -> proto::BudgetPeriod {
    match p {
        model::BudgetPeriod::BillingPeriod => proto::BudgetPeriod::BillingPeriod,
        model::BudgetPeriod::Day => proto::BudgetPeriod::Day,
    }
}

pub fn subject_policy(p: model::SubjectPolicy) -> proto::SubjectPolicy {
    proto::SubjectPolicy {
        subject_id: p.subject_id,
        spending_enabled: p.spending_enabled,
        budgets: p
            .budgets
            .into_iter()
            .map(|b| proto::Budget {
                period: budget_period(b.period) as i32,
                scope: b.scope,
                limit_micros: b.limit,
            })
            .collect(),
        rate_limits: p
            .rate_limits
            .into_iter()
            .map(|r| proto::RateLimit {
                sku: r.sku,
                max_count: r.max_count,
                window_seconds: r.window_seconds,
            })
            .collect(),
    }
}

pub fn reserve_response(o: model::ReserveOutcome) -> proto::ReserveResponse {
    let decision = if o.denial.is_none() {
        proto::Decision::Granted
    } else {
        proto::Decision::Denied
    };
    proto::ReserveResponse {
        decision: decision as i32,
        denial_reason: denial_reason(o.denial) as i32,
        denial_detail: o.denial_detail,
        reservation: o.reservation.map(reservation),
        balance: Some(balance(o.balance)),
        replayed: o.replayed,
        retry_at: o.retry_at.map(timestamp),
    }
}

pub fn quote_response(o: model::QuoteOutcome) -> proto::QuoteResponse {
    proto::QuoteResponse {
        amount_micros: o.amount,
        affordable: o.affordable,
        balance: Some(balance(o.balance)),
        free_quantity_applied: o.free_applied,
        denial_reason: denial_reason(o.denial) as i32,
        items: o.lines.iter().map(priced_item).collect(),
    }
}

pub fn priced_item(l: &model::HeldLine) -> proto::PricedItem {
    proto::PricedItem {
        sku: l.sku.clone(),
        quantity: l.quantity,
        unit_price_num: l.price_num,
        unit_price_den: l.price_den,
        free_quantity_applied: l.free_applied,
        amount_micros: l.amount,
    }
}

pub fn commit_response(o: model::CommitOutcome) -> proto::CommitResponse {
    proto::CommitResponse {
        reservation: Some(reservation(o.reservation)),
        charged_micros: o.effect.charged,
        released_micros: o.effect.released,
        overrun_micros: o.effect.overrun,
        debt_micros: o.effect.debt,
        late: o.effect.late,
        balance: Some(balance(o.balance)),
        replayed: o.replayed,
    }
}

pub fn release_response(o: model::ReleaseOutcome) -> proto::ReleaseResponse {
    proto::ReleaseResponse {
        reservation: Some(reservation(o.reservation)),
        released_micros: o.released,
        balance: Some(balance(o.balance)),
        replayed: o.replayed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_in_milliseconds() {
        for ms in [0, 1, 999, 1_000, 1_700_000_000_123] {
            assert_eq!(millis(&timestamp(ms)), ms);
        }
        let t = timestamp(1_700_000_000_123);
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
        let before_epoch = timestamp(-1);
        assert_eq!(
            (before_epoch.seconds, before_epoch.nanos),
            (-1, 999_000_000)
        );
    }

    #[test]
    fn enums_map_both_ways() {
        for k in [
            model::GrantKind::Allowance,
            model::GrantKind::Prepaid,
            model::GrantKind::TopUp,
            model::GrantKind::Promo,
        ] {
            assert_eq!(grant_kind_from_proto(grant_kind(k) as i32), Ok(k));
            assert_eq!(grant_kind(k).as_str_name(), k.as_str());
        }
        assert_eq!(
            denial_reason(Some(model::DenialReason::DebtOutstanding)).as_str_name(),
            "DEBT_OUTSTANDING"
        );
        assert_eq!(denial_reason(None), proto::DenialReason::Unspecified);
        assert_eq!(overrun(1), Ok(model::Overrun::Cap));
    }
}
