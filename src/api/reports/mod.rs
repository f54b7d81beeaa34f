//! `GetUsage`, `GetProfitAndLoss`, `ListLedgerEntries`, `ListAuditEvents`: the ledger's reports
//! through `CreditAdmin`. [`request`] checks the requests, [`crate::ledger::reports`] runs the
//! SQL, [`answer`] builds the messages.
//!
//! Failures beyond the model's errors, each with a `google.rpc.ErrorInfo` reason:
//! - no ledger configured (`--database-url`): `FAILED_PRECONDITION` / `LEDGER_NOT_CONFIGURED`;
//! - Postgres unreachable, overloaded or too slow: `UNAVAILABLE` / `LEDGER_UNAVAILABLE`;
//! - an account the ledger does not know (yet): `NOT_FOUND` / `ACCOUNT_NOT_FOUND`;
//! - a roll-up by parent over an account the token may not read: `PERMISSION_DENIED`.

pub mod answer;
pub mod request;

use std::collections::HashMap;
use std::future::Future;
use std::time::Instant;

use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::auth::AccountAccess;
use super::errors::{self, DOMAIN};
use crate::error::Error;
use crate::ledger::reports::{self, ReportError, MAX_ROLLUP_ACCOUNTS};
use crate::ledger::Ledger;
use crate::proto;
use crate::telemetry::metrics;
use request::PnlScope;

/// The `ErrorInfo.reason` when the server runs without `--database-url`.
pub const NOT_CONFIGURED: &str = "LEDGER_NOT_CONFIGURED";
/// The `ErrorInfo.reason` when Postgres does not answer.
pub const UNAVAILABLE: &str = "LEDGER_UNAVAILABLE";

/// Why a report was not produced.
#[derive(Debug)]
enum Failure {
    /// Invalid input (or another model error).
    Model(Error),
    NotConfigured,
    Ledger(ReportError),
    /// The roll-up reaches an account the caller may not read.
    Denied(&'static str),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Model(e)
    }
}

impl From<ReportError> for Failure {
    fn from(e: ReportError) -> Self {
        Failure::Ledger(e)
    }
}

impl Failure {
    /// The bounded `outcome` label of the RPC metrics.
    fn outcome(&self) -> &'static str {
        match self {
            Failure::Model(e) => metrics::error_outcome(e),
            Failure::NotConfigured => "ledger_not_configured",
            Failure::Ledger(ReportError::AccountNotFound(_)) => "account_not_found",
            Failure::Ledger(ReportError::Unavailable(_)) => "ledger_unavailable",
            Failure::Ledger(ReportError::Failed(_)) => "internal",
            Failure::Denied(_) => "permission_denied",
        }
    }

    fn status(&self) -> Status {
        let (code, reason, message, metadata) = match self {
            Failure::Model(e) => return errors::status(e),
            Failure::NotConfigured => (
                Code::FailedPrecondition,
                NOT_CONFIGURED,
                "no ledger is configured (start creditd with --database-url)".to_string(),
                HashMap::new(),
            ),
            Failure::Ledger(e @ ReportError::AccountNotFound(_)) => (
                Code::NotFound,
                Error::AccountNotFound.reason(),
                format!("{e} (unknown, or not reconciled yet)"),
                HashMap::new(),
            ),
            Failure::Ledger(e @ ReportError::Unavailable(_)) => (
                Code::Unavailable,
                UNAVAILABLE,
                e.to_string(),
                HashMap::new(),
            ),
            Failure::Ledger(e @ ReportError::Failed(_)) => (
                Code::Internal,
                Error::Internal(String::new()).reason(),
                e.to_string(),
                HashMap::new(),
            ),
            Failure::Denied(method) => (
                Code::PermissionDenied,
                "PERMISSION_DENIED",
                "the roll-up includes accounts this token may not read".to_string(),
                HashMap::from([("method".to_string(), method.to_string())]),
            ),
        };
        let mut details = ErrorDetails::new();
        details.set_error_info(reason, DOMAIN, metadata);
        Status::with_error_details(code, message, details)
    }
}

/// Runs one report: times it, records its outcome, logs ledger failures, maps them to statuses.
async fn observe<T>(
    method: &'static str,
    call: impl Future<Output = Result<T, Failure>>,
) -> Result<Response<T>, Status> {
    let started = Instant::now();
    let result = call.await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(failure) => {
            match failure {
                Failure::Ledger(ReportError::Failed(e)) => tracing::error!(method, "{e}"),
                Failure::Ledger(ReportError::Unavailable(e)) => tracing::warn!(method, "{e}"),
                other => tracing::debug!(method, "refused: {other:?}"),
            }
            failure.outcome()
        }
    };
    metrics::record_rpc(method, outcome, started.elapsed());
    result.map(Response::new).map_err(|f| f.status())
}

fn ledger(ledger: Option<&Ledger>) -> Result<&Ledger, Failure> {
    ledger.ok_or(Failure::NotConfigured)
}

pub async fn get_usage(
    db: Option<&Ledger>,
    request: Request<proto::GetUsageRequest>,
) -> Result<Response<proto::GetUsageResponse>, Status> {
    let call = async {
        let req = super::validate::within_limit(request.into_inner())?;
        let q = request::usage(&req)?;
        let usage = reports::usage(ledger(db)?, &q).await?;
        Ok(answer::usage(&q, usage))
    };
    observe("get_usage", call).await
}

pub async fn get_profit_and_loss(
    db: Option<&Ledger>,
    request: Request<proto::GetProfitAndLossRequest>,
) -> Result<Response<proto::GetProfitAndLossResponse>, Status> {
    let access = AccountAccess::of(&request).cloned();
    let call = async {
        let req = super::validate::within_limit(request.into_inner())?;
        let (scope, window) = request::profit_and_loss(&req)?;
        let db = ledger(db)?;
        let accounts = match scope {
            PnlScope::Account(account) => {
                reports::require_account(db, &account).await?;
                vec![account]
            }
            PnlScope::Parent(parent) => rolled_up(db, &parent, access.as_ref()).await?,
        };
        Ok(answer::profit_and_loss(
            reports::profit_and_loss(db, &accounts, window).await?,
        ))
    };
    observe("get_profit_and_loss", call).await
}

/// The accounts of `parent`, each of which the caller must be allowed to read (a roll-up over
/// some of them only would be a wrong total). Without the guard's access: none.
async fn rolled_up(
    db: &Ledger,
    parent: &str,
    access: Option<&AccountAccess>,
) -> Result<Vec<String>, Failure> {
    let accounts = reports::accounts_of_parent(db, parent).await?;
    if !accounts
        .iter()
        .all(|a| access.is_some_and(|access| access.allows(a)))
    {
        return Err(Failure::Denied("GetProfitAndLoss"));
    }
    if accounts.is_empty() {
        return Err(Failure::Ledger(ReportError::AccountNotFound(format!(
            "with parent {parent}"
        ))));
    }
    if accounts.len() > MAX_ROLLUP_ACCOUNTS {
        return Err(Failure::Model(Error::invalid(
            "parent_id",
            format!("rolls up more than {MAX_ROLLUP_ACCOUNTS} accounts; ask per account"),
        )));
    }
    Ok(accounts)
}

pub async fn list_ledger_entries(
    db: Option<&Ledger>,
    request: Request<proto::ListLedgerEntriesRequest>,
) -> Result<Response<proto::ListLedgerEntriesResponse>, Status> {
    let call = async {
        let req = super::validate::within_limit(request.into_inner())?;
        let q = request::entries(&req)?;
        Ok(answer::entries(reports::entries(ledger(db)?, &q).await?))
    };
    observe("list_ledger_entries", call).await
}

pub async fn list_audit_events(
    db: Option<&Ledger>,
    request: Request<proto::ListAuditEventsRequest>,
) -> Result<Response<proto::ListAuditEventsResponse>, Status> {
    let call = async {
        let req = super::validate::within_limit(request.into_inner())?;
        let q = request::audit(&req)?;
        Ok(answer::audit_events(
            reports::audit_events(ledger(db)?, &q).await?,
        ))
    };
    observe("list_audit_events", call).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(status: &Status) -> (Code, String) {
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.domain, "creditd");
        (status.code(), info.reason)
    }

    #[test]
    fn failures_have_their_code_and_reason() {
        let table = [
            (
                Failure::NotConfigured,
                Code::FailedPrecondition,
                "LEDGER_NOT_CONFIGURED",
            ),
            (
                Failure::Ledger(ReportError::Unavailable("refused".into())),
                Code::Unavailable,
                "LEDGER_UNAVAILABLE",
            ),
            (
                Failure::Ledger(ReportError::AccountNotFound("a".into())),
                Code::NotFound,
                "ACCOUNT_NOT_FOUND",
            ),
            (
                Failure::Ledger(ReportError::Failed("bug".into())),
                Code::Internal,
                "INTERNAL",
            ),
            (
                Failure::Denied("GetProfitAndLoss"),
                Code::PermissionDenied,
                "PERMISSION_DENIED",
            ),
            (
                Failure::Model(Error::invalid("page_size", "too big")),
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
            ),
        ];
        for (failure, code, reason) in table {
            assert_eq!(
                info(&failure.status()),
                (code, reason.to_string()),
                "{failure:?}"
            );
            assert!(!failure.outcome().is_empty());
        }
    }

    #[tokio::test]
    async fn without_a_ledger_reports_are_a_failed_precondition() {
        let status = get_usage(
            None,
            Request::new(proto::GetUsageRequest {
                account_id: "acme".into(),
                ..Default::default()
            }),
        )
        .await
        .expect_err("no ledger");
        assert_eq!(
            info(&status),
            (Code::FailedPrecondition, NOT_CONFIGURED.to_string())
        );
        // Bad input is still named first.
        let status = list_ledger_entries(
            None,
            Request::new(proto::ListLedgerEntriesRequest {
                account_id: "acme".into(),
                page_size: 5000,
                ..Default::default()
            }),
        )
        .await
        .expect_err("bad page size");
        assert_eq!(
            info(&status),
            (Code::InvalidArgument, "INVALID_ARGUMENT".to_string())
        );
    }
}
