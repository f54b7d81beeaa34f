//! The ledger's reports as proto messages.

use prost_types::Timestamp;

use super::request::{audit_token, entry_token};
use crate::ledger::reports::{
    AuditEvent, Entry, Page, ProfitAndLoss, ProfitAndLossReport, Usage, UsageQuery,
};
use crate::proto;

pub fn usage(q: &UsageQuery, usage: Usage) -> proto::GetUsageResponse {
    let label_key = q.group.label.clone().unwrap_or_default();
    proto::GetUsageResponse {
        rows: usage
            .rows
            .into_iter()
            .map(|r| proto::UsageRow {
                sku: r.sku,
                subject_id: r.subject_id,
                label_key: label_key.clone(),
                label_value: r.label_value,
                day: r.day,
                credits_micros: r.credits,
                quantity: r.quantity,
                commits: r.commits,
            })
            .collect(),
        total_micros: usage.total,
        truncated: usage.truncated,
    }
}

fn pnl(p: ProfitAndLoss) -> proto::ProfitAndLoss {
    proto::ProfitAndLoss {
        account_id: p.account_id,
        revenue_micros: p.revenue,
        cost_micros: p.cost,
        margin_micros: p.margin,
        credits_spent_micros: p.credits_spent,
        overage_micros: p.overage,
        debt_micros: p.debt,
        debt_paid_micros: p.debt_paid,
    }
}

pub fn profit_and_loss(report: ProfitAndLossReport) -> proto::GetProfitAndLossResponse {
    proto::GetProfitAndLossResponse {
        accounts: report.accounts.into_iter().map(pnl).collect(),
        total: Some(pnl(report.total)),
    }
}

pub fn entries(page: Page<Entry>) -> proto::ListLedgerEntriesResponse {
    let next_page_token = match page.items.last() {
        Some(last) if page.more => entry_token((last.seq, last.n)),
        _ => String::new(),
    };
    proto::ListLedgerEntriesResponse {
        entries: page
            .items
            .into_iter()
            .map(|e| proto::LedgerEntry {
                account_id: e.account_id,
                seq: e.seq,
                n: e.n,
                kind: e.kind,
                at: Some(Timestamp::from(e.at)),
                grant_id: e.grant_id,
                bucket: e.bucket,
                amount_micros: e.amount,
                reservation_id: e.reservation_id,
                subject_id: e.subject_id,
            })
            .collect(),
        next_page_token,
    }
}

pub fn audit_events(page: Page<AuditEvent>) -> proto::ListAuditEventsResponse {
    let next_page_token = match page.items.last() {
        Some(last) if page.more => audit_token(last.seq),
        _ => String::new(),
    };
    let json = |v: Option<serde_json::Value>| v.map(|v| v.to_string()).unwrap_or_default();
    proto::ListAuditEventsResponse {
        events: page
            .items
            .into_iter()
            .map(|e| proto::AuditEvent {
                account_id: e.account_id,
                seq: e.seq,
                kind: e.kind,
                at: Some(Timestamp::from(e.at)),
                actor: e.actor,
                subject_id: e.subject_id,
                detail: e.detail,
                before: json(e.before),
                after: json(e.after),
            })
            .collect(),
        next_page_token,
    }
}
