//! The report commands: `creditd usage`, `creditd pnl`, `creditd ledger entries` and
//! `creditd audit`. Their arguments, the calls (the listings follow the pages up to `--limit`),
//! and the printers: [`text`] for people, [`json`] for `--json`.

pub mod json;
pub mod text;

use clap::{Args, Subcommand};
use prost_types::Timestamp;
use tonic::{Code, Status};

use super::commands::Connection;
use super::time::parse_timestamp;
use crate::proto::{
    AuditEvent, GetProfitAndLossRequest, GetProfitAndLossResponse, GetUsageRequest,
    GetUsageResponse, LedgerEntry, ListAuditEventsRequest, ListLedgerEntriesRequest, UsageGroupBy,
};

/// What the server pages at most: the listings ask for pages of up to this many.
const MAX_PAGE: usize = 1000;

/// One `--by`: what usage is grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageBy {
    Sku,
    Subject,
    /// The value of this label.
    Label(String),
    Day,
}

/// `sku`, `subject`, `day` or `label:KEY`.
fn parse_usage_by(text: &str) -> Result<UsageBy, String> {
    match text {
        "sku" => Ok(UsageBy::Sku),
        "subject" => Ok(UsageBy::Subject),
        "day" => Ok(UsageBy::Day),
        _ => match text.strip_prefix("label:") {
            Some(key) if !key.is_empty() => Ok(UsageBy::Label(key.to_string())),
            _ => Err(format!(
                "{text:?} is not sku, subject, day or label:KEY (e.g. label:feature)"
            )),
        },
    }
}

/// The time window of a report.
#[derive(Debug, Args)]
pub struct Window {
    /// From this time on (RFC 3339 or a date, e.g. 2026-11-01; default: the beginning).
    #[arg(long, value_name = "TIME", value_parser = parse_timestamp)]
    pub from: Option<Timestamp>,
    /// Before this time (RFC 3339 or a date; default: everything booked).
    #[arg(long, value_name = "TIME", value_parser = parse_timestamp)]
    pub to: Option<Timestamp>,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The account id.
    pub account: String,
    #[command(flatten)]
    pub window: Window,
    /// Group by sku, subject, label:KEY or day (UTC); repeatable, e.g. --by day --by sku.
    /// Without --by: one line with the total.
    #[arg(long = "by", value_name = "GROUPING", value_parser = parse_usage_by)]
    pub by: Vec<UsageBy>,
    /// Only this subject's usage.
    #[arg(long)]
    pub subject: Option<String>,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("whose").required(true).args(["account", "parent"])))]
pub struct PnlArgs {
    /// One account.
    #[arg(long)]
    pub account: Option<String>,
    /// Every account of this parent (customer), each on its own line, and their total.
    #[arg(long)]
    pub parent: Option<String>,
    #[command(flatten)]
    pub window: Window,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
pub struct LedgerArgs {
    #[command(subcommand)]
    pub command: LedgerCommand,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// List an account's double-entry postings in order (each event's postings sum to zero).
    Entries(EntriesArgs),
}

#[derive(Debug, Args)]
pub struct EntriesArgs {
    /// The account id.
    pub account: String,
    /// Only this reservation's postings.
    #[arg(long)]
    pub reservation: Option<String>,
    /// Only this grant's postings (also @overage, @debt).
    #[arg(long)]
    pub grant: Option<String>,
    #[command(flatten)]
    pub window: Window,
    /// Print at most this many postings (the pages are followed until then).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The account id.
    pub account: String,
    #[command(flatten)]
    pub window: Window,
    /// Print at most this many changes (the pages are followed until then).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
    #[command(flatten)]
    pub connection: Connection,
}

/// The usage request of `creditd usage`; more than one `--by label:KEY` is refused.
pub fn usage_request(args: UsageArgs) -> Result<GetUsageRequest, Status> {
    let mut request = GetUsageRequest {
        account_id: args.account,
        start_time: args.window.from,
        end_time: args.window.to,
        subject_id: args.subject.unwrap_or_default(),
        ..Default::default()
    };
    for by in args.by {
        let group = match by {
            UsageBy::Sku => UsageGroupBy::Sku,
            UsageBy::Subject => UsageGroupBy::Subject,
            UsageBy::Day => UsageGroupBy::Day,
            UsageBy::Label(key) => {
                if !request.label_key.is_empty() {
                    return Err(Status::new(
                        Code::InvalidArgument,
                        "--by label:KEY may be given once per report",
                    ));
                }
                request.label_key = key;
                UsageGroupBy::Label
            }
        };
        request.group_by.push(group as i32);
    }
    Ok(request)
}

pub fn pnl_request(args: PnlArgs) -> GetProfitAndLossRequest {
    GetProfitAndLossRequest {
        account_id: args.account.unwrap_or_default(),
        parent_id: args.parent.unwrap_or_default(),
        start_time: args.window.from,
        end_time: args.window.to,
    }
}

/// A usage report with the groupings asked for (which decide the columns).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageReport {
    pub response: GetUsageResponse,
    pub by: Vec<UsageBy>,
}

/// What a listing printed, and whether the server had more.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub more: bool,
}

pub type Entries = Listing<LedgerEntry>;
pub type AuditTrail = Listing<AuditEvent>;
pub type ProfitAndLoss = GetProfitAndLossResponse;

/// Follows the pages of a listing until `limit` items or the last page. `fetch` asks for one
/// page (`page_size`, `page_token`) and answers its items and next token.
pub async fn follow<T, F, Fut>(limit: u64, mut fetch: F) -> Result<Listing<T>, Status>
where
    F: FnMut(i32, String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), Status>>,
{
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let want = (limit - items.len()).min(MAX_PAGE);
        let (page, next) = fetch(want as i32, token).await?;
        items.extend(page);
        if next.is_empty() {
            return Ok(Listing { items, more: false });
        }
        if items.len() >= limit {
            items.truncate(limit);
            return Ok(Listing { items, more: true });
        }
        token = next;
    }
}

pub fn entries_request(args: &EntriesArgs) -> ListLedgerEntriesRequest {
    ListLedgerEntriesRequest {
        account_id: args.account.clone(),
        reservation_id: args.reservation.clone().unwrap_or_default(),
        grant_id: args.grant.clone().unwrap_or_default(),
        start_time: args.window.from,
        end_time: args.window.to,
        ..Default::default()
    }
}

pub fn audit_request(args: &AuditArgs) -> ListAuditEventsRequest {
    ListAuditEventsRequest {
        account_id: args.account.clone(),
        start_time: args.window.from,
        end_time: args.window.to,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groupings_parse() {
        assert_eq!(parse_usage_by("sku"), Ok(UsageBy::Sku));
        assert_eq!(
            parse_usage_by("label:feature"),
            Ok(UsageBy::Label("feature".into()))
        );
        for bad in ["", "label:", "labels:x", "SKU", "week"] {
            assert!(parse_usage_by(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_label_key_per_report() {
        let args = |by: Vec<UsageBy>| UsageArgs {
            account: "acme".into(),
            window: Window {
                from: None,
                to: None,
            },
            by,
            subject: None,
            connection: Connection {
                server: "http://127.0.0.1:1".into(),
                json: false,
                token: None,
                ca_cert: None,
                client_cert: None,
                client_key: None,
            },
        };
        let request =
            usage_request(args(vec![UsageBy::Day, UsageBy::Label("f".into())])).expect("valid");
        assert_eq!(
            request.group_by,
            vec![UsageGroupBy::Day as i32, UsageGroupBy::Label as i32]
        );
        assert_eq!(request.label_key, "f");
        let twice = vec![UsageBy::Label("f".into()), UsageBy::Label("g".into())];
        assert_eq!(
            usage_request(args(twice)).unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[tokio::test]
    async fn listings_follow_pages_up_to_the_limit() {
        // 25 items served 10 at a time at most.
        let serve = |size: i32, token: String| async move {
            let start: usize = if token.is_empty() {
                0
            } else {
                token.parse().unwrap()
            };
            let end = (start + size as usize).min(25).min(start + 10);
            let next = if end < 25 {
                end.to_string()
            } else {
                String::new()
            };
            Ok::<_, Status>(((start..end).collect::<Vec<_>>(), next))
        };
        let all = follow(1000, serve).await.unwrap();
        assert_eq!(all.items, (0..25).collect::<Vec<_>>());
        assert!(!all.more);
        let some = follow(12, serve).await.unwrap();
        assert_eq!(some.items, (0..12).collect::<Vec<_>>());
        assert!(some.more);
        let exact = follow(25, serve).await.unwrap();
        assert_eq!(exact.items.len(), 25);
        assert!(!exact.more);
    }
}
