//! Reports from the ledger: usage, profit and loss, the postings and the audit trail.
//!
//! Every query runs in its own read-only transaction with a statement timeout, and selects
//! events by their time (`at`): `start` inclusive, `end` exclusive, either side open when unset.
//! Sums are taken in Postgres and come back as `bigint`; revenue is computed in `numeric` and
//! floored once per account (see [`profit_and_loss`]). No float touches an amount.

use std::time::SystemTime;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{is_transient, Ledger};

/// How long one report query may run before Postgres cancels it.
const STATEMENT_TIMEOUT: &str = "30s";
/// The most rows a usage report returns (the total still counts every row).
pub const MAX_USAGE_ROWS: usize = 10_000;
/// The most accounts a roll-up by parent may cover.
pub const MAX_ROLLUP_ACCOUNTS: usize = 10_000;
/// The event kinds that are admin changes, for the audit trail.
pub const AUDIT_KINDS: [&str; 6] = [
    "account_created",
    "account_updated",
    "grant_created",
    "grant_voided",
    "policy_set",
    "spending_access_requested",
];
/// The events that charge credits and carry a provider cost.
const CHARGE_KINDS: &str = "('committed', 'captured')";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The ledger holds no event of the account (unknown, or not reconciled yet).
    #[error("the ledger has no account {0:?}")]
    AccountNotFound(String),
    /// Postgres did not answer (down, overloaded, the query timed out): worth retrying.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    #[error("ledger query failed: {0}")]
    Failed(String),
}

impl From<anyhow::Error> for ReportError {
    fn from(e: anyhow::Error) -> Self {
        if is_transient(&e) {
            ReportError::Unavailable(format!("{e:#}"))
        } else {
            ReportError::Failed(format!("{e:#}"))
        }
    }
}

pub type Result<T, E = ReportError> = std::result::Result<T, E>;

/// Which events count: `start <= at < end`, each bound optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub start: Option<SystemTime>,
    pub end: Option<SystemTime>,
}

/// What usage rows are grouped by; all false (and no label) gives one row of totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grouping {
    pub sku: bool,
    pub subject: bool,
    /// Group by the value of this label.
    pub label: Option<String>,
    pub day: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub account_id: String,
    pub window: Window,
    pub group: Grouping,
    /// Only this subject's usage ("" = every subject).
    pub subject_id: String,
}

/// One group of usage. Fields of the groupings not asked for are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRow {
    /// "" = credits charged without priced items.
    pub sku: String,
    pub subject_id: String,
    pub label_value: String,
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub credits: i64,
    /// Units of the SKU (0 without the SKU grouping).
    pub quantity: i64,
    /// Commits and captures in the group.
    pub commits: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub rows: Vec<UsageRow>,
    pub total: i64,
    pub truncated: bool,
}

/// Profit and loss of one account (or the total when `account_id` is empty). Money in micros of
/// the deployment's currency, credits in micro-credits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfitAndLoss {
    pub account_id: String,
    pub revenue: i64,
    pub cost: i64,
    pub margin: i64,
    pub credits_spent: i64,
    pub overage: i64,
    pub debt: i64,
    pub debt_paid: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfitAndLossReport {
    pub accounts: Vec<ProfitAndLoss>,
    pub total: ProfitAndLoss,
}

/// Where a page of postings starts: after this (seq, n).
pub type EntryCursor = (i64, i32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryQuery {
    pub account_id: String,
    /// "" = every reservation.
    pub reservation_id: String,
    /// "" = every grant.
    pub grant_id: String,
    pub window: Window,
    pub after: Option<EntryCursor>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub account_id: String,
    pub seq: i64,
    pub n: i32,
    pub kind: String,
    pub at: SystemTime,
    pub grant_id: String,
    pub bucket: String,
    pub amount: i64,
    pub reservation_id: String,
    pub subject_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub account_id: String,
    pub window: Window,
    /// Start after this sequence number.
    pub after: Option<i64>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub account_id: String,
    pub seq: i64,
    pub kind: String,
    pub at: SystemTime,
    pub actor: String,
    pub subject_id: String,
    pub detail: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// A page of a listing: its items, and whether more follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub more: bool,
}

/// Runs `sql` in a read-only transaction bounded by [`STATEMENT_TIMEOUT`].
async fn query(ledger: &Ledger, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
    let mut client = ledger.client().await?;
    let run = async {
        let tx = client.transaction().await?;
        tx.batch_execute(&format!(
            "SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'"
        ))
        .await?;
        let rows = tx.query(sql, params).await?;
        tx.commit().await?;
        Ok::<_, tokio_postgres::Error>(rows)
    };
    run.await
        .map_err(|e| ReportError::from(anyhow::Error::new(e).context("report query")))
}

/// `NotFound` unless the ledger holds events of `account_id`.
pub async fn require_account(ledger: &Ledger, account_id: &str) -> Result<()> {
    let rows = query(
        ledger,
        "SELECT 1 FROM ledger_heads WHERE account_id = $1",
        &[&account_id],
    )
    .await?;
    if rows.is_empty() {
        return Err(ReportError::AccountNotFound(account_id.to_string()));
    }
    Ok(())
}

/// The accounts whose latest account event names `parent_id` as their parent, by id. At most
/// `MAX_ROLLUP_ACCOUNTS + 1` (so that a caller can tell there are too many).
pub async fn accounts_of_parent(ledger: &Ledger, parent_id: &str) -> Result<Vec<String>> {
    let limit = (MAX_ROLLUP_ACCOUNTS + 1) as i64;
    let rows = query(
        ledger,
        "SELECT account_id FROM ledger_heads WHERE parent_id = $1 AND parent_id <> '' \
         ORDER BY account_id LIMIT $2",
        &[&parent_id, &limit],
    )
    .await?;
    decode(&rows, |r| r.try_get(0))
}

/// The events of the window, as SQL on a `ledger_events` alias `e`, with `$2`, `$3` the bounds.
const IN_WINDOW: &str =
    "($2::timestamptz IS NULL OR e.at >= $2) AND ($3::timestamptz IS NULL OR e.at < $3)";

/// Credits spent by the account in the window, grouped as asked.
///
/// Usage is what went into the `spent` bucket (postings with `bucket = 'spent'` and a positive
/// amount), attributed to the event's subject and labels. Grouped by SKU, it comes from the
/// charges by SKU that the reconciler books with each commit (the items capped at the charge,
/// the rest under sku ""), which add up to the same credits.
pub async fn usage(ledger: &Ledger, q: &UsageQuery) -> Result<Usage> {
    require_account(ledger, &q.account_id).await?;
    let g = &q.group;
    let label_key = g.label.clone().unwrap_or_default();
    // Each grouping is a column that is constant ('') when not asked for.
    let columns = "CASE WHEN $5 THEN e.subject_id ELSE '' END, \
         CASE WHEN $6 THEN coalesce(e.labels ->> $7, '') ELSE '' END, \
         CASE WHEN $8 THEN to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD') ELSE '' END";
    let sql = if g.sku {
        format!(
            "SELECT c.sku, {columns}, sum(c.amount_micros)::int8, sum(c.quantity)::int8, \
               count(DISTINCT e.seq)::int8, (sum(sum(c.amount_micros)) OVER ())::int8 \
             FROM ledger_item_charges c \
             JOIN ledger_events e ON e.account_id = c.account_id AND e.seq = c.seq \
             WHERE c.account_id = $1 AND {IN_WINDOW} AND ($4 = '' OR e.subject_id = $4) \
             GROUP BY 1, 2, 3, 4 ORDER BY 4, 1, 2, 3 LIMIT $9"
        )
    } else {
        format!(
            "SELECT ''::text, {columns}, coalesce(sum(s.credits), 0)::int8, 0::int8, \
               count(*)::int8, (sum(coalesce(sum(s.credits), 0)) OVER ())::int8 \
             FROM ledger_events e \
             LEFT JOIN LATERAL (SELECT sum(p.amount_micros) AS credits FROM ledger_entries p \
               WHERE p.account_id = e.account_id AND p.seq = e.seq AND p.bucket = 'spent' \
               AND p.amount_micros > 0) s ON true \
             WHERE e.account_id = $1 AND {IN_WINDOW} AND ($4 = '' OR e.subject_id = $4) \
               AND (e.kind IN {CHARGE_KINDS} OR s.credits IS NOT NULL) \
             GROUP BY 1, 2, 3, 4 ORDER BY 4, 1, 2, 3 LIMIT $9"
        )
    };
    let limit = (MAX_USAGE_ROWS + 1) as i64;
    let rows = query(
        ledger,
        &sql,
        &[
            &q.account_id,
            &q.window.start,
            &q.window.end,
            &q.subject_id,
            &g.subject,
            &g.label.is_some(),
            &label_key,
            &g.day,
            &limit,
        ],
    )
    .await?;
    let total = match rows.first() {
        Some(r) => r.try_get(7).map_err(failed)?,
        None => 0,
    };
    let truncated = rows.len() > MAX_USAGE_ROWS;
    let rows = decode(&rows[..rows.len().min(MAX_USAGE_ROWS)], |r| {
        Ok(UsageRow {
            sku: r.try_get(0)?,
            subject_id: r.try_get(1)?,
            label_value: r.try_get(2)?,
            day: r.try_get(3)?,
            credits: r.try_get(4)?,
            quantity: r.try_get(5)?,
            commits: r.try_get(6)?,
        })
    })?;
    Ok(Usage {
        rows,
        total,
        truncated,
    })
}

/// Profit and loss of each of `accounts` (in the order given) and their total, in the window.
///
/// - `credits_spent`: postings into `spent`; `overage` and `debt`: those of grant `@overage`
///   and `@debt`; `debt_paid`: postings into `debt_paid` (a new grant paying debt off).
/// - `revenue` = floor(Σ over the account's grants of (spent + debt_paid) × unit_price_micros
///   / 1_000_000), computed in `numeric` (exact) and floored once per account. `@overage` and
///   `@debt` have no unit price: debt earns revenue when, and at the price at which, a grant pays
///   it. The total's revenue is the sum of the floored account revenues.
/// - `cost`: Σ `cost_micros` of the committed and captured events; `margin` = revenue − cost.
pub async fn profit_and_loss(
    ledger: &Ledger,
    accounts: &[String],
    window: Window,
) -> Result<ProfitAndLossReport> {
    let sql = format!(
        "WITH moved AS ( \
           SELECT p.account_id, p.grant_id, p.bucket, sum(p.amount_micros) AS amount \
           FROM ledger_entries p \
           JOIN ledger_events e ON e.account_id = p.account_id AND e.seq = p.seq \
           WHERE p.account_id = ANY($1) AND p.bucket IN ('spent', 'debt_paid') \
             AND p.amount_micros > 0 AND {IN_WINDOW} \
           GROUP BY 1, 2, 3), \
         books AS ( \
           SELECT m.account_id, \
             sum(m.amount) FILTER (WHERE m.bucket = 'spent') AS spent, \
             sum(m.amount) FILTER (WHERE m.bucket = 'spent' AND m.grant_id = '@overage') AS overage, \
             sum(m.amount) FILTER (WHERE m.bucket = 'spent' AND m.grant_id = '@debt') AS debt, \
             sum(m.amount) FILTER (WHERE m.bucket = 'debt_paid') AS debt_paid, \
             floor(sum(m.amount::numeric * coalesce(g.unit_price_micros, 0)) / 1000000) AS revenue \
           FROM moved m \
           LEFT JOIN ledger_grants g ON g.account_id = m.account_id AND g.grant_id = m.grant_id \
           GROUP BY 1), \
         costs AS ( \
           SELECT e.account_id, sum(e.cost_micros) AS cost FROM ledger_events e \
           WHERE e.account_id = ANY($1) AND e.kind IN {CHARGE_KINDS} AND {IN_WINDOW} \
           GROUP BY 1) \
         SELECT a.account_id, coalesce(b.revenue, 0)::int8, coalesce(c.cost, 0)::int8, \
           coalesce(b.spent, 0)::int8, coalesce(b.overage, 0)::int8, coalesce(b.debt, 0)::int8, \
           coalesce(b.debt_paid, 0)::int8 \
         FROM unnest($1::text[]) WITH ORDINALITY AS a(account_id, ord) \
         LEFT JOIN books b ON b.account_id = a.account_id \
         LEFT JOIN costs c ON c.account_id = a.account_id \
         ORDER BY a.ord"
    );
    let rows = query(ledger, &sql, &[&accounts, &window.start, &window.end]).await?;
    let mut report = ProfitAndLossReport::default();
    let rows = decode(&rows, |r| {
        Ok(ProfitAndLoss {
            account_id: r.try_get(0)?,
            revenue: r.try_get(1)?,
            cost: r.try_get(2)?,
            credits_spent: r.try_get(3)?,
            overage: r.try_get(4)?,
            debt: r.try_get(5)?,
            debt_paid: r.try_get(6)?,
            margin: 0,
        })
    })?;
    for mut row in rows {
        row.margin = checked(row.revenue.checked_sub(row.cost), "margin")?;
        report.total = add(&report.total, &row)?;
        report.accounts.push(row);
    }
    Ok(report)
}

fn checked(value: Option<i64>, what: &str) -> Result<i64> {
    value.ok_or_else(|| ReportError::Failed(format!("{what} does not fit in 64 bits")))
}

/// `a + b` field by field (the total row), refusing an overflow.
fn add(a: &ProfitAndLoss, b: &ProfitAndLoss) -> Result<ProfitAndLoss> {
    Ok(ProfitAndLoss {
        account_id: String::new(),
        revenue: checked(a.revenue.checked_add(b.revenue), "total revenue")?,
        cost: checked(a.cost.checked_add(b.cost), "total cost")?,
        margin: checked(a.margin.checked_add(b.margin), "total margin")?,
        credits_spent: checked(
            a.credits_spent.checked_add(b.credits_spent),
            "total credits",
        )?,
        overage: checked(a.overage.checked_add(b.overage), "total overage")?,
        debt: checked(a.debt.checked_add(b.debt), "total debt")?,
        debt_paid: checked(a.debt_paid.checked_add(b.debt_paid), "total debt paid")?,
    })
}

/// A page of the account's postings, by (seq, n).
pub async fn entries(ledger: &Ledger, q: &EntryQuery) -> Result<Page<Entry>> {
    require_account(ledger, &q.account_id).await?;
    let (after_seq, after_n) = q.after.unwrap_or((0, 0));
    let limit = (q.limit + 1) as i64;
    let sql = format!(
        "SELECT p.account_id, p.seq, p.n, e.kind, e.at, p.grant_id, p.bucket, p.amount_micros, \
           e.reservation_id, e.subject_id \
         FROM ledger_entries p \
         JOIN ledger_events e ON e.account_id = p.account_id AND e.seq = p.seq \
         WHERE p.account_id = $1 AND {IN_WINDOW} \
           AND ($4 = '' OR e.reservation_id = $4) AND ($5 = '' OR p.grant_id = $5) \
           AND (p.seq, p.n) > ($6::int8, $7::int4) \
         ORDER BY p.seq, p.n LIMIT $8"
    );
    let rows = query(
        ledger,
        &sql,
        &[
            &q.account_id,
            &q.window.start,
            &q.window.end,
            &q.reservation_id,
            &q.grant_id,
            &after_seq,
            &after_n,
            &limit,
        ],
    )
    .await?;
    page(rows, q.limit, |r| {
        Ok(Entry {
            account_id: r.try_get(0)?,
            seq: r.try_get(1)?,
            n: r.try_get(2)?,
            kind: r.try_get(3)?,
            at: r.try_get(4)?,
            grant_id: r.try_get(5)?,
            bucket: r.try_get(6)?,
            amount: r.try_get(7)?,
            reservation_id: r.try_get(8)?,
            subject_id: r.try_get(9)?,
        })
    })
}

/// A page of the account's admin changes ([`AUDIT_KINDS`]), by seq.
pub async fn audit_events(ledger: &Ledger, q: &AuditQuery) -> Result<Page<AuditEvent>> {
    require_account(ledger, &q.account_id).await?;
    let kinds: Vec<&str> = AUDIT_KINDS.to_vec();
    let limit = (q.limit + 1) as i64;
    let sql = format!(
        "SELECT e.account_id, e.seq, e.kind, e.at, e.actor, e.subject_id, e.detail, e.before, \
           e.after \
         FROM ledger_events e \
         WHERE e.account_id = $1 AND {IN_WINDOW} AND e.kind = ANY($4) AND e.seq > $5 \
         ORDER BY e.seq LIMIT $6"
    );
    let rows = query(
        ledger,
        &sql,
        &[
            &q.account_id,
            &q.window.start,
            &q.window.end,
            &kinds,
            &q.after.unwrap_or(0),
            &limit,
        ],
    )
    .await?;
    page(rows, q.limit, |r| {
        Ok(AuditEvent {
            account_id: r.try_get(0)?,
            seq: r.try_get(1)?,
            kind: r.try_get(2)?,
            at: r.try_get(3)?,
            actor: r.try_get(4)?,
            subject_id: r.try_get(5)?,
            detail: r.try_get(6)?,
            before: r.try_get(7)?,
            after: r.try_get(8)?,
        })
    })
}

/// A column that does not decode as expected: a fault of this code or of the schema.
fn failed(e: tokio_postgres::Error) -> ReportError {
    ReportError::Failed(format!("reading a report row: {e}"))
}

/// Each row as a `T`.
fn decode<T>(
    rows: &[Row],
    item: impl Fn(&Row) -> std::result::Result<T, tokio_postgres::Error>,
) -> Result<Vec<T>> {
    rows.iter().map(|r| item(r).map_err(failed)).collect()
}

/// The first `limit` rows as items; more follow when the query found one more.
fn page<T>(
    rows: Vec<Row>,
    limit: usize,
    item: impl Fn(&Row) -> std::result::Result<T, tokio_postgres::Error>,
) -> Result<Page<T>> {
    Ok(Page {
        more: rows.len() > limit,
        items: decode(&rows[..rows.len().min(limit)], item)?,
    })
}
