//! The report requests checked and turned into ledger queries, or `INVALID_ARGUMENT` naming the
//! field; and the page tokens.
//!
//! A page token is opaque to callers: the hex of `e1:SEQ:N` (entries) or `a1:SEQ` (audit
//! events), the position after which the next page starts. A token that does not decode is
//! `INVALID_ARGUMENT` on `page_token`.

use prost_types::Timestamp;

use crate::api::validate;
use crate::error::{Error, Result};
use crate::ledger::book::time_of;
use crate::ledger::reports::{AuditQuery, EntryCursor, EntryQuery, Grouping, UsageQuery, Window};
use crate::model::{DEBT_ID, OVERAGE_ID};
use crate::proto::{self, UsageGroupBy};

pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

/// Whose profit and loss: one account, or every account of a parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PnlScope {
    Account(String),
    Parent(String),
}

/// `start_time` ≤ `end_time`, both optional and within the timestamp rules.
pub fn window(start: Option<&Timestamp>, end: Option<&Timestamp>) -> Result<Window> {
    let start = validate::timestamp("start_time", start)?;
    let end = validate::timestamp("end_time", end)?;
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err(Error::invalid("start_time", "is after end_time"));
        }
    }
    Ok(Window {
        start: start.map(time_of),
        end: end.map(time_of),
    })
}

pub fn usage(req: &proto::GetUsageRequest) -> Result<UsageQuery> {
    let account_id = validate::id("account_id", &req.account_id)?;
    let window = window(req.start_time.as_ref(), req.end_time.as_ref())?;
    let mut group = Grouping::default();
    let mut seen = Vec::new();
    for (i, value) in req.group_by.iter().enumerate() {
        let field = format!("group_by[{i}]");
        let by = UsageGroupBy::try_from(*value)
            .ok()
            .filter(|g| *g != UsageGroupBy::Unspecified)
            .ok_or_else(|| Error::invalid(&field, "must be SKU, SUBJECT, LABEL or DAY"))?;
        if seen.contains(&by) {
            return Err(Error::invalid(&field, "is given twice"));
        }
        seen.push(by);
        match by {
            UsageGroupBy::Sku => group.sku = true,
            UsageGroupBy::Subject => group.subject = true,
            UsageGroupBy::Day => group.day = true,
            UsageGroupBy::Label => group.label = Some(label_key(&req.label_key)?),
            UsageGroupBy::Unspecified => unreachable!("refused above"),
        }
    }
    if group.label.is_none() && !req.label_key.is_empty() {
        return Err(Error::invalid(
            "label_key",
            "is only used with group_by USAGE_GROUP_BY_LABEL",
        ));
    }
    Ok(UsageQuery {
        account_id,
        window,
        group,
        subject_id: validate::optional_id("subject_id", &req.subject_id)?,
    })
}

/// A label key as reservations carry them (1 to 64 characters).
fn label_key(key: &str) -> Result<String> {
    let chars = key.chars().count();
    if chars == 0 {
        return Err(Error::invalid(
            "label_key",
            "is required with group_by USAGE_GROUP_BY_LABEL",
        ));
    }
    if chars > validate::MAX_LABEL_KEY_CHARS {
        return Err(Error::invalid(
            "label_key",
            format!(
                "must be at most {} characters",
                validate::MAX_LABEL_KEY_CHARS
            ),
        ));
    }
    Ok(key.to_string())
}

pub fn profit_and_loss(req: &proto::GetProfitAndLossRequest) -> Result<(PnlScope, Window)> {
    let window = window(req.start_time.as_ref(), req.end_time.as_ref())?;
    let scope = match (req.account_id.is_empty(), req.parent_id.is_empty()) {
        (false, true) => PnlScope::Account(validate::id("account_id", &req.account_id)?),
        (true, false) => PnlScope::Parent(validate::id("parent_id", &req.parent_id)?),
        (true, true) => {
            return Err(Error::invalid(
                "account_id",
                "is required (or parent_id for a roll-up)",
            ))
        }
        (false, false) => {
            return Err(Error::invalid(
                "parent_id",
                "give account_id or parent_id, not both",
            ))
        }
    };
    Ok((scope, window))
}

pub fn entries(req: &proto::ListLedgerEntriesRequest) -> Result<EntryQuery> {
    let grant_id = match req.grant_id.as_str() {
        id @ (OVERAGE_ID | DEBT_ID) => id.to_string(),
        id => validate::optional_id("grant_id", id)?,
    };
    Ok(EntryQuery {
        account_id: validate::id("account_id", &req.account_id)?,
        reservation_id: validate::optional_id("reservation_id", &req.reservation_id)?,
        grant_id,
        window: window(req.start_time.as_ref(), req.end_time.as_ref())?,
        after: entry_cursor(&req.page_token)?,
        limit: page_size(req.page_size)?,
    })
}

pub fn audit(req: &proto::ListAuditEventsRequest) -> Result<AuditQuery> {
    Ok(AuditQuery {
        account_id: validate::id("account_id", &req.account_id)?,
        window: window(req.start_time.as_ref(), req.end_time.as_ref())?,
        after: audit_cursor(&req.page_token)?,
        limit: page_size(req.page_size)?,
    })
}

/// 0 is the default; otherwise 1 to [`MAX_PAGE_SIZE`].
fn page_size(value: i32) -> Result<usize> {
    match value {
        0 => Ok(DEFAULT_PAGE_SIZE),
        v if v > 0 && v as usize <= MAX_PAGE_SIZE => Ok(v as usize),
        v => Err(Error::invalid(
            "page_size",
            format!("must be between 1 and {MAX_PAGE_SIZE} (0 = {DEFAULT_PAGE_SIZE}), got {v}"),
        )),
    }
}

pub fn entry_token((seq, n): EntryCursor) -> String {
    hex::encode(format!("e1:{seq}:{n}"))
}

pub fn audit_token(seq: i64) -> String {
    hex::encode(format!("a1:{seq}"))
}

fn bad_token() -> Error {
    Error::invalid("page_token", "is not a next_page_token of this listing")
}

/// The text inside a token, after its `prefix`; None for "" (the first page).
fn token_body<'a>(token: &str, prefix: &str, buf: &'a mut String) -> Result<Option<&'a str>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bytes = hex::decode(token).map_err(|_| bad_token())?;
    *buf = String::from_utf8(bytes).map_err(|_| bad_token())?;
    buf.strip_prefix(prefix).map(Some).ok_or_else(bad_token)
}

fn entry_cursor(token: &str) -> Result<Option<EntryCursor>> {
    let mut buf = String::new();
    let Some(body) = token_body(token, "e1:", &mut buf)? else {
        return Ok(None);
    };
    let (seq, n) = body.split_once(':').ok_or_else(bad_token)?;
    let seq: i64 = seq.parse().map_err(|_| bad_token())?;
    let n: i32 = n.parse().map_err(|_| bad_token())?;
    if seq < 1 || n < 0 {
        return Err(bad_token());
    }
    Ok(Some((seq, n)))
}

fn audit_cursor(token: &str) -> Result<Option<i64>> {
    let mut buf = String::new();
    let Some(body) = token_body(token, "a1:", &mut buf)? else {
        return Ok(None);
    };
    match body.parse::<i64>() {
        Ok(seq) if seq >= 1 => Ok(Some(seq)),
        _ => Err(bad_token()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(err: Error) -> String {
        match err {
            Error::InvalidArgument { field, .. } => field,
            other => panic!("not an invalid argument: {other:?}"),
        }
    }

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn windows_are_ordered_and_optional() {
        assert_eq!(window(None, None).unwrap(), Window::default());
        let w = window(at(10).as_ref(), at(10).as_ref()).unwrap();
        assert_eq!(w.start, w.end);
        assert_eq!(
            field(window(at(11).as_ref(), at(10).as_ref()).unwrap_err()),
            "start_time"
        );
        assert_eq!(
            field(window(at(-1).as_ref(), None).unwrap_err()),
            "start_time"
        );
        let bad_nanos = Timestamp {
            seconds: 1,
            nanos: -1,
        };
        assert_eq!(
            field(window(None, Some(&bad_nanos)).unwrap_err()),
            "end_time"
        );
    }

    #[test]
    fn usage_groupings() {
        let req = |group_by: Vec<UsageGroupBy>, label_key: &str| proto::GetUsageRequest {
            account_id: "acme".into(),
            group_by: group_by.into_iter().map(|g| g as i32).collect(),
            label_key: label_key.into(),
            ..Default::default()
        };
        let q = usage(&req(
            vec![UsageGroupBy::Day, UsageGroupBy::Label],
            "feature",
        ))
        .unwrap();
        assert_eq!(
            q.group,
            Grouping {
                day: true,
                label: Some("feature".into()),
                ..Grouping::default()
            }
        );
        let cases = [
            (req(vec![UsageGroupBy::Label], ""), "label_key"),
            (req(vec![UsageGroupBy::Sku], "feature"), "label_key"),
            (
                req(vec![UsageGroupBy::Sku, UsageGroupBy::Sku], ""),
                "group_by[1]",
            ),
            (req(vec![UsageGroupBy::Unspecified], ""), "group_by[0]"),
            (req(vec![], &"k".repeat(65)), "label_key"),
        ];
        for (r, want) in cases {
            assert_eq!(field(usage(&r).unwrap_err()), want, "{r:?}");
        }
        let mut unknown = req(vec![], "");
        unknown.group_by = vec![99];
        assert_eq!(field(usage(&unknown).unwrap_err()), "group_by[0]");
        let mut no_account = req(vec![], "");
        no_account.account_id.clear();
        assert_eq!(field(usage(&no_account).unwrap_err()), "account_id");
        let mut bad_subject = req(vec![], "");
        bad_subject.subject_id = "a b".into();
        assert_eq!(field(usage(&bad_subject).unwrap_err()), "subject_id");
    }

    #[test]
    fn profit_and_loss_takes_an_account_or_a_parent() {
        let req = |account: &str, parent: &str| proto::GetProfitAndLossRequest {
            account_id: account.into(),
            parent_id: parent.into(),
            ..Default::default()
        };
        assert_eq!(
            profit_and_loss(&req("a", "")).unwrap().0,
            PnlScope::Account("a".into())
        );
        assert_eq!(
            profit_and_loss(&req("", "p")).unwrap().0,
            PnlScope::Parent("p".into())
        );
        assert_eq!(
            field(profit_and_loss(&req("", "")).unwrap_err()),
            "account_id"
        );
        assert_eq!(
            field(profit_and_loss(&req("a", "p")).unwrap_err()),
            "parent_id"
        );
        assert_eq!(
            field(profit_and_loss(&req("", "p*")).unwrap_err()),
            "parent_id"
        );
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(1), Ok(1));
        assert_eq!(page_size(1000), Ok(1000));
        for bad in [-1, 1001, i32::MAX, i32::MIN] {
            assert_eq!(field(page_size(bad).unwrap_err()), "page_size");
        }
    }

    #[test]
    fn page_tokens_round_trip_and_refuse_garbage() {
        assert_eq!(entry_cursor(""), Ok(None));
        assert_eq!(entry_cursor(&entry_token((42, 3))), Ok(Some((42, 3))));
        assert_eq!(audit_cursor(&audit_token(7)), Ok(Some(7)));
        for bad in [
            "zz".to_string(),
            "abc".to_string(),
            hex::encode("e1:1"),
            hex::encode("e1:x:1"),
            hex::encode("e1:0:0"),
            hex::encode("e1:1:-1"),
            audit_token(7),
        ] {
            assert_eq!(
                field(entry_cursor(&bad).unwrap_err()),
                "page_token",
                "{bad}"
            );
        }
        assert_eq!(
            field(audit_cursor(&entry_token((1, 0))).unwrap_err()),
            "page_token"
        );
    }

    #[test]
    fn entries_accept_the_pseudo_grants() {
        let req = |grant: &str| proto::ListLedgerEntriesRequest {
            account_id: "acme".into(),
            grant_id: grant.into(),
            ..Default::default()
        };
        assert_eq!(entries(&req("@overage")).unwrap().grant_id, "@overage");
        assert_eq!(entries(&req("@debt")).unwrap().grant_id, "@debt");
        assert_eq!(entries(&req("g-1")).unwrap().limit, DEFAULT_PAGE_SIZE);
        assert_eq!(field(entries(&req("@other")).unwrap_err()), "grant_id");
        let mut bad = req("");
        bad.reservation_id = "r/1".into();
        assert_eq!(field(entries(&bad).unwrap_err()), "reservation_id");
    }
}
