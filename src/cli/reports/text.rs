//! The reports as text: tables with credits and money as decimals ("1.5"), times in UTC.

use std::fmt::Write as _;

use serde_json::Value;

use super::{AuditTrail, Entries, ProfitAndLoss, UsageBy, UsageReport};
use crate::cli::credits::format_credits;
use crate::cli::output::{credits_phrase, format_timestamp, or_dash, table, Column};
use crate::proto;

/// What a usage row without a SKU (credits charged without priced items) is called.
pub const UNPRICED: &str = "(unpriced)";

/// Columns in the server's order (day, sku, subject, label), whatever the order of `--by`.
pub fn usage(report: &UsageReport) -> String {
    let by = &report.by;
    let has = |want: fn(&UsageBy) -> bool| by.iter().any(want);
    let (day, sku, subject) = (
        has(|b| *b == UsageBy::Day),
        has(|b| *b == UsageBy::Sku),
        has(|b| *b == UsageBy::Subject),
    );
    let label = has(|b| matches!(b, UsageBy::Label(_)));
    let mut columns = Vec::new();
    for (on, title) in [
        (day, "DAY"),
        (sku, "SKU"),
        (subject, "SUBJECT"),
        (label, "LABEL"),
    ] {
        if on {
            columns.push(Column::left(title));
        }
    }
    columns.push(Column::right("CREDITS"));
    if sku {
        columns.push(Column::right("QUANTITY"));
    }
    columns.push(Column::right("COMMITS"));

    let response = &report.response;
    let mut text = String::new();
    if response.rows.is_empty() {
        text.push_str("no usage\n");
    } else {
        let rows = response
            .rows
            .iter()
            .map(|r| {
                let mut cells = Vec::new();
                if day {
                    cells.push(r.day.clone());
                }
                if sku {
                    cells.push(sku_name(&r.sku));
                }
                if subject {
                    cells.push(or_dash(&r.subject_id));
                }
                if label {
                    cells.push(format!("{}={}", r.label_key, or_dash(&r.label_value)));
                }
                cells.push(format_credits(r.credits_micros));
                if sku {
                    cells.push(r.quantity.to_string());
                }
                cells.push(r.commits.to_string());
                cells
            })
            .collect();
        text.push_str(&table(&columns, rows));
    }
    let _ = write!(text, "total {}", credits_phrase(response.total_micros));
    if response.truncated {
        let _ = write!(
            text,
            " ({} rows shown; the total counts them all: narrow with --from/--to)",
            response.rows.len()
        );
    }
    text
}

fn sku_name(sku: &str) -> String {
    if sku.is_empty() {
        UNPRICED.to_string()
    } else {
        sku.to_string()
    }
}

/// One line per account and a TOTAL line; money in the deployment's currency.
pub fn profit_and_loss(report: &ProfitAndLoss) -> String {
    let line = |name: String, p: &proto::ProfitAndLoss| {
        vec![
            name,
            format_credits(p.revenue_micros),
            format_credits(p.cost_micros),
            format_credits(p.margin_micros),
            format_credits(p.credits_spent_micros),
            format_credits(p.overage_micros),
            format_credits(p.debt_micros),
            format_credits(p.debt_paid_micros),
        ]
    };
    let mut rows: Vec<Vec<String>> = report
        .accounts
        .iter()
        .map(|p| line(p.account_id.clone(), p))
        .collect();
    if report.accounts.len() > 1 {
        rows.push(line(
            "TOTAL".to_string(),
            &report.total.clone().unwrap_or_default(),
        ));
    }
    table(
        &[
            Column::left("ACCOUNT"),
            Column::right("REVENUE"),
            Column::right("COST"),
            Column::right("MARGIN"),
            Column::right("CREDITS SPENT"),
            Column::right("OVERAGE"),
            Column::right("DEBT"),
            Column::right("DEBT PAID"),
        ],
        rows,
    )
}

pub fn entries(listing: &Entries) -> String {
    if listing.items.is_empty() {
        return "no postings\n".to_string();
    }
    let rows = listing
        .items
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                e.n.to_string(),
                format_timestamp(e.at.as_ref(), "-"),
                e.kind.clone(),
                or_dash(&e.reservation_id),
                or_dash(&e.subject_id),
                e.grant_id.clone(),
                e.bucket.clone(),
                format_credits(e.amount_micros),
            ]
        })
        .collect();
    let mut text = table(
        &[
            Column::right("SEQ"),
            Column::right("N"),
            Column::left("AT"),
            Column::left("KIND"),
            Column::left("RESERVATION"),
            Column::left("SUBJECT"),
            Column::left("GRANT"),
            Column::left("BUCKET"),
            Column::right("CREDITS"),
        ],
        rows,
    );
    if listing.more {
        text.push_str("(more postings: raise --limit, or narrow with --from/--to)\n");
    }
    text
}

pub fn audit(listing: &AuditTrail) -> String {
    if listing.items.is_empty() {
        return "no admin changes\n".to_string();
    }
    let rows = listing
        .items
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                format_timestamp(e.at.as_ref(), "-"),
                e.kind.clone(),
                or_dash(&e.actor),
                or_dash(&e.subject_id),
                or_dash(&e.detail),
                change(&e.before, &e.after),
            ]
        })
        .collect();
    let mut text = table(
        &[
            Column::right("SEQ"),
            Column::left("AT"),
            Column::left("KIND"),
            Column::left("ACTOR"),
            Column::left("SUBJECT"),
            Column::left("DETAIL"),
            Column::left("CHANGE"),
        ],
        rows,
    );
    if listing.more {
        text.push_str("(more changes: raise --limit, or narrow with --from/--to)\n");
    }
    text
}

/// What an admin change changed: "suspended: false -> true" for each top-level field that
/// differs, "created" when there is no before, "-" when there is neither.
fn change(before: &str, after: &str) -> String {
    let parse = |s: &str| serde_json::from_str::<Value>(s).ok();
    match (parse(before), parse(after)) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            let diffs: Vec<String> = keys
                .into_iter()
                .filter(|k| b.get(*k) != a.get(*k))
                .map(|k| format!("{k}: {} -> {}", shown(b.get(k)), shown(a.get(k))))
                .collect();
            if diffs.is_empty() {
                "no change".to_string()
            } else {
                diffs.join("; ")
            }
        }
        (None, Some(_)) => "created".to_string(),
        (Some(_), Some(_)) => "changed".to_string(),
        (_, None) => "-".to_string(),
    }
}

fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "-".to_string(), Value::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{GetUsageResponse, UsageRow};

    #[test]
    fn usage_columns_follow_the_groupings() {
        let report = UsageReport {
            response: GetUsageResponse {
                rows: vec![
                    UsageRow {
                        sku: String::new(),
                        day: "2026-01-15".into(),
                        credits_micros: 3_000_000,
                        commits: 1,
                        ..Default::default()
                    },
                    UsageRow {
                        sku: "grid.row".into(),
                        day: "2026-01-15".into(),
                        credits_micros: 15_000_000,
                        quantity: 25,
                        commits: 1,
                        ..Default::default()
                    },
                ],
                total_micros: 18_000_000,
                truncated: false,
            },
            by: vec![UsageBy::Sku, UsageBy::Day],
        };
        assert_eq!(
            usage(&report),
            "DAY         SKU         CREDITS  QUANTITY  COMMITS\n\
             2026-01-15  (unpriced)        3         0        1\n\
             2026-01-15  grid.row         15        25        1\n\
             total 18 credits"
        );
        let empty = UsageReport {
            response: GetUsageResponse::default(),
            by: vec![],
        };
        assert_eq!(usage(&empty), "no usage\ntotal 0 credits");
    }

    #[test]
    fn audit_changes_show_what_changed() {
        assert_eq!(
            change(
                r#"{"suspended":false,"plan_id":"pro"}"#,
                r#"{"suspended":true,"plan_id":"pro"}"#
            ),
            "suspended: false -> true"
        );
        assert_eq!(change("", r#"{"a":1}"#), "created");
        assert_eq!(change("", ""), "-");
        assert_eq!(change(r#"{"a":1}"#, r#"{"a":1}"#), "no change");
    }
}
