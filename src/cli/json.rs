//! `--json`: the server's answer with the proto field names, amounts as integers of micros
//! (exact: all below 2^53), enums by their proto names and times as RFC 3339 strings (null when
//! unset).

use serde_json::{json, Map, Value};

use super::answer::Answer;
use super::reports;
use crate::proto::{
    Account, Allocation, Balance, CommitResponse, Grant, GrantBalance, QuoteResponse, RateCard,
    ReleaseResponse, Reservation, ReserveResponse, SubjectPolicy,
};

/// The JSON document printed for an answer (pretty, ending with a newline).
pub fn render(answer: &Answer) -> String {
    let value = to_value(answer);
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

pub fn to_value(answer: &Answer) -> Value {
    match answer {
        Answer::Account(account) => account_json(account),
        Answer::Grant(grant) => grant_json(grant),
        Answer::Grants(grants) => {
            json!({ "grants": grants.iter().map(grant_json).collect::<Vec<_>>() })
        }
        Answer::Reserve(response) => reserve_json(response),
        Answer::Commit { response, .. } => commit_json(response),
        Answer::Release(response) => release_json(response),
        Answer::Extend(response) => {
            json!({ "reservation": optional(response.reservation.as_ref(), reservation_json) })
        }
        Answer::Reservation(reservation) => reservation_json(reservation),
        Answer::Balance(balance) => balance_json(balance),
        Answer::Quote(response) => quote_json(response),
        Answer::Policy { account, policy } => policy_json(account, policy),
        Answer::AccessRequested { account, subject } => {
            json!({ "account_id": account, "subject_id": subject, "requested": true })
        }
        Answer::RateCard(card) => rate_card_json(card),
        Answer::Usage(report) => reports::json::usage(report),
        Answer::ProfitAndLoss(report) => reports::json::profit_and_loss(report),
        Answer::Entries(listing) => reports::json::entries(listing),
        Answer::Audit(listing) => reports::json::audit(listing),
    }
}

fn time(timestamp: Option<&prost_types::Timestamp>) -> Value {
    timestamp.map_or(Value::Null, |t| Value::String(t.to_string()))
}

fn optional<T>(value: Option<&T>, convert: fn(&T) -> Value) -> Value {
    value.map_or(Value::Null, convert)
}

fn reserve_json(response: &ReserveResponse) -> Value {
    json!({
        "decision": response.decision().as_str_name(),
        "denial_reason": response.denial_reason().as_str_name(),
        "denial_detail": response.denial_detail,
        "reservation": optional(response.reservation.as_ref(), reservation_json),
        "balance": optional(response.balance.as_ref(), balance_json),
        "replayed": response.replayed,
        "retry_at": time(response.retry_at.as_ref()),
    })
}

fn policy_json(account: &str, policy: &SubjectPolicy) -> Value {
    json!({
        "account_id": account,
        "subject_id": policy.subject_id,
        "spending_enabled": policy.spending_enabled,
        "budgets": policy.budgets.iter().map(|b| json!({
            "scope": b.scope,
            "period": b.period().as_str_name(),
            "limit_micros": b.limit_micros,
        })).collect::<Vec<_>>(),
        "rate_limits": policy.rate_limits.iter().map(|r| json!({
            "sku": r.sku,
            "max_count": r.max_count,
            "window_seconds": r.window_seconds,
        })).collect::<Vec<_>>(),
    })
}

fn rate_card_json(card: &RateCard) -> Value {
    json!({
        "version": card.version,
        "currency": card.currency,
        "top_up_increment_micros": card.top_up_increment_micros,
        "skus": card.skus.iter().map(|s| json!({
            "sku": s.sku,
            "unit": s.unit,
            "price": s.price,
            "price_micros": s.price_micros,
            "price_micros_numerator": s.price_micros_numerator,
            "price_micros_denominator": s.price_micros_denominator,
            "free_quantity": s.free_quantity,
            "multipliers": s.multipliers.iter().collect::<std::collections::BTreeMap<_, _>>(),
            "description": s.description,
        })).collect::<Vec<_>>(),
        "plans": card.plans.iter().map(|p| json!({
            "plan_id": p.plan_id,
            "allowance_micros": p.allowance_micros,
            "monthly_price": p.monthly_price,
            "description": p.description,
        })).collect::<Vec<_>>(),
    })
}

fn commit_json(response: &CommitResponse) -> Value {
    json!({
        "reservation": optional(response.reservation.as_ref(), reservation_json),
        "charged_micros": response.charged_micros,
        "released_micros": response.released_micros,
        "overrun_micros": response.overrun_micros,
        "debt_micros": response.debt_micros,
        "late": response.late,
        "balance": optional(response.balance.as_ref(), balance_json),
        "replayed": response.replayed,
    })
}

fn release_json(response: &ReleaseResponse) -> Value {
    json!({
        "reservation": optional(response.reservation.as_ref(), reservation_json),
        "released_micros": response.released_micros,
        "balance": optional(response.balance.as_ref(), balance_json),
        "replayed": response.replayed,
    })
}

fn quote_json(response: &QuoteResponse) -> Value {
    json!({
        "amount_micros": response.amount_micros,
        "affordable": response.affordable,
        "balance": optional(response.balance.as_ref(), balance_json),
        "free_quantity_applied": response.free_quantity_applied,
        "denial_reason": response.denial_reason().as_str_name(),
    })
}

fn reservation_json(reservation: &Reservation) -> Value {
    let labels: Map<String, Value> = reservation
        .labels
        .iter()
        .map(|(key, value)| (key.clone(), Value::String(value.clone())))
        .collect();
    json!({
        "reservation_id": reservation.reservation_id,
        "account_id": reservation.account_id,
        "subject_id": reservation.subject_id,
        "state": reservation.state().as_str_name(),
        "held_micros": reservation.held_micros,
        "committed_micros": reservation.committed_micros,
        "expires_at": time(reservation.expires_at.as_ref()),
        "allocations": reservation.allocations.iter().map(allocation_json).collect::<Vec<_>>(),
        "labels": labels,
        "created_at": time(reservation.created_at.as_ref()),
        "requested_micros": reservation.requested_micros,
        "granted_micros": reservation.granted_micros,
        "late": reservation.late,
    })
}

fn allocation_json(allocation: &Allocation) -> Value {
    json!({
        "grant_id": allocation.grant_id,
        "held_micros": allocation.held_micros,
        "committed_micros": allocation.committed_micros,
    })
}

fn balance_json(balance: &Balance) -> Value {
    json!({
        "account_id": balance.account_id,
        "available_micros": balance.available_micros,
        "held_micros": balance.held_micros,
        "granted_remaining_micros": balance.granted_remaining_micros,
        "debt_micros": balance.debt_micros,
        "overage_used_micros": balance.overage_used_micros,
        "overage_cap_micros": balance.overage_cap_micros,
        "period_start": time(balance.period_start.as_ref()),
        "period_end": time(balance.period_end.as_ref()),
        "grants": balance.grants.iter().map(grant_balance_json).collect::<Vec<_>>(),
        "overage_enabled": balance.overage_enabled,
        "overage_held_micros": balance.overage_held_micros,
        "sequence": balance.sequence,
        "overage_spent_total_micros": balance.overage_spent_total_micros,
    })
}

fn grant_balance_json(grant: &GrantBalance) -> Value {
    json!({
        "grant_id": grant.grant_id,
        "kind": grant.kind().as_str_name(),
        "remaining_micros": grant.remaining_micros,
        "expires_at": time(grant.expires_at.as_ref()),
        "held_micros": grant.held_micros,
        "priority": grant.priority,
    })
}

fn grant_json(grant: &Grant) -> Value {
    json!({
        "grant_id": grant.grant_id,
        "account_id": grant.account_id,
        "kind": grant.kind().as_str_name(),
        "amount_micros": grant.amount_micros,
        "remaining_micros": grant.remaining_micros,
        "priority": grant.priority,
        "effective_at": time(grant.effective_at.as_ref()),
        "expires_at": time(grant.expires_at.as_ref()),
        "unit_price_micros": grant.unit_price_micros,
        "state": grant.state().as_str_name(),
        "held_micros": grant.held_micros,
        "spent_micros": grant.spent_micros,
        "expired_micros": grant.expired_micros,
        "voided_micros": grant.voided_micros,
        "created_at": time(grant.created_at.as_ref()),
    })
}

fn account_json(account: &Account) -> Value {
    let overage = account.overage.unwrap_or_default();
    json!({
        "account_id": account.account_id,
        "parent_id": account.parent_id,
        "plan_id": account.plan_id,
        "billing_anchor": time(account.billing_anchor.as_ref()),
        "overage": { "enabled": overage.enabled, "cap_micros": overage.cap_micros },
        "suspended": account.suspended,
        "created_at": time(account.created_at.as_ref()),
        "threshold_micros": account.threshold_micros,
        "allowance_alert_percent": account.allowance_alert_percent,
        "auto_top_up": account.auto_top_up.map(|t| json!({
            "threshold_micros": t.threshold_micros,
            "amount_micros": t.amount_micros,
        })),
    })
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;

    use super::*;
    use crate::proto::{Decision, GrantKind, ReservationState};

    #[test]
    fn a_reserve_answer_keeps_micros_enums_and_times() {
        let mut reservation = Reservation {
            reservation_id: "r1".into(),
            account_id: "acme".into(),
            state: ReservationState::Held as i32,
            held_micros: 1_500_000,
            expires_at: Some(Timestamp {
                seconds: 1_795_341_600,
                nanos: 0,
            }),
            allocations: vec![Allocation {
                grant_id: "g1".into(),
                held_micros: 1_500_000,
                committed_micros: 0,
            }],
            ..Default::default()
        };
        reservation.labels.insert("feature".into(), "grid".into());
        let response = ReserveResponse {
            decision: Decision::Granted as i32,
            reservation: Some(reservation),
            balance: Some(Balance {
                account_id: "acme".into(),
                available_micros: -3_250_000,
                grants: vec![GrantBalance {
                    grant_id: "g1".into(),
                    kind: GrantKind::TopUp as i32,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let value = to_value(&Answer::Reserve(response));
        assert_eq!(value["decision"], "GRANTED");
        assert_eq!(value["denial_reason"], "DENIAL_REASON_UNSPECIFIED");
        assert_eq!(value["reservation"]["state"], "HELD");
        assert_eq!(value["reservation"]["held_micros"], 1_500_000);
        assert_eq!(value["reservation"]["expires_at"], "2026-11-22T10:00:00Z");
        assert_eq!(value["reservation"]["created_at"], Value::Null);
        assert_eq!(value["reservation"]["labels"]["feature"], "grid");
        assert_eq!(value["reservation"]["allocations"][0]["grant_id"], "g1");
        assert_eq!(value["balance"]["available_micros"], -3_250_000);
        assert_eq!(value["balance"]["grants"][0]["kind"], "TOP_UP");
        assert_eq!(value["replayed"], false);
    }

    #[test]
    fn a_denied_reserve_has_a_null_reservation_and_the_output_parses_back() {
        let response = ReserveResponse {
            decision: Decision::Denied as i32,
            denial_reason: crate::proto::DenialReason::AccountSuspended as i32,
            ..Default::default()
        };
        let text = render(&Answer::Reserve(response));
        assert!(text.ends_with("}\n"));
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["decision"], "DENIED");
        assert_eq!(value["denial_reason"], "ACCOUNT_SUSPENDED");
        assert_eq!(value["reservation"], Value::Null);
    }

    #[test]
    fn accounts_and_grant_lists() {
        let account = Account {
            account_id: "acme".into(),
            overage: Some(crate::proto::Overage {
                enabled: true,
                cap_micros: 50_000_000,
            }),
            ..Default::default()
        };
        let value = to_value(&Answer::Account(account));
        assert_eq!(value["overage"]["enabled"], true);
        assert_eq!(value["overage"]["cap_micros"], 50_000_000);
        assert_eq!(value["billing_anchor"], Value::Null);

        let grant = Grant {
            grant_id: "g1".into(),
            kind: GrantKind::Promo as i32,
            state: crate::proto::GrantState::GrantVoided as i32,
            amount_micros: 7,
            ..Default::default()
        };
        let value = to_value(&Answer::Grants(vec![grant]));
        assert_eq!(value["grants"][0]["kind"], "PROMO");
        assert_eq!(value["grants"][0]["state"], "GRANT_VOIDED");
        assert_eq!(value["grants"][0]["amount_micros"], 7);
        assert_eq!(value["grants"][0]["expires_at"], Value::Null);
    }
}
