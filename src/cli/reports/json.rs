//! The reports for `--json`: proto field names, amounts in micros, times as RFC 3339 strings,
//! an audit event's before and after as JSON values (null when none).

use serde_json::{json, Value};

use super::{AuditTrail, Entries, ProfitAndLoss, UsageReport};
use crate::proto;

fn time(timestamp: Option<&prost_types::Timestamp>) -> Value {
    timestamp.map_or(Value::Null, |t| Value::String(t.to_string()))
}

pub fn usage(report: &UsageReport) -> Value {
    let r = &report.response;
    json!({
        "rows": r.rows.iter().map(|row| json!({
            "sku": row.sku,
            "subject_id": row.subject_id,
            "label_key": row.label_key,
            "label_value": row.label_value,
            "day": row.day,
            "credits_micros": row.credits_micros,
            "quantity": row.quantity,
            "commits": row.commits,
        })).collect::<Vec<_>>(),
        "total_micros": r.total_micros,
        "truncated": r.truncated,
    })
}

fn pnl(p: &proto::ProfitAndLoss) -> Value {
    json!({
        "account_id": p.account_id,
        "revenue_micros": p.revenue_micros,
        "cost_micros": p.cost_micros,
        "margin_micros": p.margin_micros,
        "credits_spent_micros": p.credits_spent_micros,
        "overage_micros": p.overage_micros,
        "debt_micros": p.debt_micros,
        "debt_paid_micros": p.debt_paid_micros,
    })
}

pub fn profit_and_loss(report: &ProfitAndLoss) -> Value {
    json!({
        "accounts": report.accounts.iter().map(pnl).collect::<Vec<_>>(),
        "total": report.total.as_ref().map_or(Value::Null, pnl),
    })
}

pub fn entries(listing: &Entries) -> Value {
    json!({
        "entries": listing.items.iter().map(|e| json!({
            "account_id": e.account_id,
            "seq": e.seq,
            "n": e.n,
            "kind": e.kind,
            "at": time(e.at.as_ref()),
            "grant_id": e.grant_id,
            "bucket": e.bucket,
            "amount_micros": e.amount_micros,
            "reservation_id": e.reservation_id,
            "subject_id": e.subject_id,
        })).collect::<Vec<_>>(),
        "more": listing.more,
    })
}

/// A JSON string from the server as a value (null when empty, the text when it does not parse).
fn embedded(text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

pub fn audit(listing: &AuditTrail) -> Value {
    json!({
        "events": listing.items.iter().map(|e| json!({
            "account_id": e.account_id,
            "seq": e.seq,
            "kind": e.kind,
            "at": time(e.at.as_ref()),
            "actor": e.actor,
            "subject_id": e.subject_id,
            "detail": e.detail,
            "before": embedded(&e.before),
            "after": embedded(&e.after),
        })).collect::<Vec<_>>(),
        "more": listing.more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::reports::Listing;

    #[test]
    fn audit_before_and_after_are_values() {
        let listing = Listing {
            items: vec![proto::AuditEvent {
                kind: "account_updated".into(),
                before: r#"{"suspended":false}"#.into(),
                after: r#"{"suspended":true}"#.into(),
                ..Default::default()
            }],
            more: false,
        };
        let value = audit(&listing);
        assert_eq!(value["events"][0]["before"]["suspended"], false);
        assert_eq!(value["events"][0]["after"]["suspended"], true);
        assert_eq!(value["events"][0]["at"], Value::Null);
        assert_eq!(value["more"], false);
    }
}
