//! What one operation does, through gRPC or straight through the Redis store, and the bench
//! accounts: created with a large grant before the load, checked for conservation after it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tonic::service::interceptor::InterceptedService;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::args::Scenario;
use super::requests;
use super::transport::Transport;
use crate::cli::secure::BearerAuth;
use crate::error::Error;
use crate::model::Quote;
use crate::proto::credit_admin_client::CreditAdminClient;
use crate::proto::credits_client::CreditsClient;
use crate::proto::{
    CommitRequest, CreateAccountRequest, CreateGrantRequest, Decision, GetBalanceRequest,
    ListGrantsRequest, QuoteRequest, ReleaseRequest, ReserveRequest,
};
use crate::store::redis::RedisStore;
use crate::store::Store;

/// Each bench account's grant: large enough that no run is denied, below 2^53 (API.md).
pub const GRANT_MICROS: i64 = 1 << 52;
const SUBJECT: &str = "bench";
const TTL_SECONDS: i64 = 300;

type Client = CreditsClient<InterceptedService<Transport, BearerAuth>>;
type Admin = CreditAdminClient<InterceptedService<Transport, BearerAuth>>;

/// Where the calls go.
pub enum Backend {
    /// The creditd server, over a few shared HTTP/2 channels.
    Grpc {
        clients: Vec<Client>,
        admin: Box<Admin>,
    },
    /// The Redis store in this process: the same scripts, no gRPC, no server.
    Redis(Box<RedisStore>),
}

/// A backend with its scenario, its accounts and its counters.
pub struct Driver {
    pub backend: Backend,
    pub scenario: Scenario,
    pub accounts: Vec<String>,
    /// Reservation ids are `{prefix}-{n}`, unique over the run.
    prefix: String,
    next_id: AtomicU64,
    reserve_micros: i64,
    commit_micros: i64,
    /// Commits that succeeded, warm-up included (what the accounts must have been charged).
    pub charged: AtomicU64,
    /// Commits that failed: a timeout or a lost connection may still have charged, so the
    /// total spent is checked to lie between `charged` and `charged + uncertain` commits.
    uncertain: AtomicU64,
    /// Calls made (gRPC RPCs, or store calls for the baseline), warm-up included.
    pub calls: AtomicU64,
    /// Live grants per account (the scale of each script's grant work).
    grants: usize,
}

/// What outstanding holds are made of: 1 micro-credit each, for a day.
const HOLD_MICROS: i64 = 1;
const HOLD_TTL_SECONDS: i64 = 86_400;

/// A failed op: what the bench groups errors by (`CODE/REASON`, or `DENIED/REASON`).
pub type ErrorKey = String;

impl Driver {
    pub fn new(
        backend: Backend,
        scenario: Scenario,
        prefix: String,
        accounts: usize,
        reserve_micros: i64,
        commit_micros: i64,
    ) -> Self {
        let accounts = (0..accounts.max(1))
            .map(|i| format!("{prefix}-{i}"))
            .collect();
        Driver {
            backend,
            scenario,
            accounts,
            prefix,
            next_id: AtomicU64::new(0),
            reserve_micros,
            commit_micros,
            charged: AtomicU64::new(0),
            uncertain: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            grants: 1,
        }
    }

    /// Gives each account `grants` live grants (together still [`GRANT_MICROS`]).
    pub fn with_grants(mut self, grants: usize) -> Self {
        self.grants = grants.max(1);
        self
    }

    /// The grants of one account: (id, amount), summing to [`GRANT_MICROS`].
    fn grant_plan(&self) -> Vec<(String, i64)> {
        let n = self.grants as i64;
        (0..n)
            .map(|j| {
                let share = GRANT_MICROS / n + if j == n - 1 { GRANT_MICROS % n } else { 0 };
                (format!("bench-{j}"), share)
            })
            .collect()
    }

    /// Makes outstanding hold number `n` (1 micro-credit, a day long) on one of the accounts.
    pub async fn hold(&self, n: u64) -> Result<()> {
        let account = &self.accounts[n as usize % self.accounts.len()];
        let id = format!("{}-hold{n}", self.prefix);
        let granted = match &self.backend {
            Backend::Grpc { clients, .. } => {
                let mut client = clients[n as usize % clients.len()].clone();
                let answer = client
                    .reserve(ReserveRequest {
                        account_id: account.clone(),
                        reservation_id: id,
                        subject_id: SUBJECT.into(),
                        amount_micros: HOLD_MICROS,
                        ttl_seconds: HOLD_TTL_SECONDS,
                        ..Default::default()
                    })
                    .await
                    .with_context(|| format!("holding on {account}"))?
                    .into_inner();
                answer.decision == Decision::Granted as i32
            }
            Backend::Redis(store) => {
                let out = store
                    .reserve(requests::reserve(
                        account,
                        &id,
                        SUBJECT,
                        HOLD_MICROS,
                        HOLD_TTL_SECONDS,
                    ))
                    .await
                    .map_err(|e| anyhow::anyhow!("holding on {account}: {e}"))?;
                out.denial.is_none()
            }
        };
        if !granted {
            bail!("an outstanding hold on {account} was denied");
        }
        Ok(())
    }

    /// Creates every bench account with its grants (together [`GRANT_MICROS`]).
    pub async fn setup(&self) -> Result<()> {
        for account in &self.accounts {
            match &self.backend {
                Backend::Grpc { admin, .. } => {
                    let mut admin = admin.clone();
                    admin
                        .create_account(CreateAccountRequest {
                            account_id: account.clone(),
                            ..Default::default()
                        })
                        .await
                        .with_context(|| format!("creating bench account {account}"))?;
                    for (grant_id, amount) in self.grant_plan() {
                        admin
                            .create_grant(CreateGrantRequest {
                                account_id: account.clone(),
                                grant_id,
                                kind: crate::proto::GrantKind::Prepaid as i32,
                                amount_micros: amount,
                                ..Default::default()
                            })
                            .await
                            .with_context(|| format!("granting bench account {account}"))?;
                    }
                }
                Backend::Redis(store) => {
                    store
                        .create_account(requests::account(account))
                        .await
                        .map_err(|e| anyhow::anyhow!("creating bench account {account}: {e}"))?;
                    for (grant_id, amount) in self.grant_plan() {
                        store
                            .create_grant(requests::prepaid(account, &grant_id, amount, 0))
                            .await
                            .map_err(|e| {
                                anyhow::anyhow!("granting bench account {account}: {e}")
                            })?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs one op; `worker` picks the channel. The latency of each call that succeeded is
    /// pushed onto `calls` (a Reserve→Commit op makes two).
    pub async fn op(&self, worker: usize, calls: &mut Vec<Duration>) -> Result<(), ErrorKey> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let account = &self.accounts[n as usize % self.accounts.len()];
        let id = format!("{}-r{n}", self.prefix);
        match &self.backend {
            Backend::Grpc { clients, .. } => {
                let mut client = clients[worker % clients.len()].clone();
                self.grpc_op(&mut client, account, &id, calls).await
            }
            Backend::Redis(store) => self.store_op(store, account, &id, calls).await,
        }
    }

    /// Counts a call and, when it succeeds, pushes its latency onto `calls`.
    async fn timed<T, E>(
        &self,
        calls: &mut Vec<Duration>,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = call.await;
        if result.is_ok() {
            calls.push(started.elapsed());
        }
        result
    }

    async fn grpc_op(
        &self,
        client: &mut Client,
        account: &str,
        id: &str,
        calls: &mut Vec<Duration>,
    ) -> Result<(), ErrorKey> {
        if self.scenario == Scenario::Quote {
            let quote = client.quote(QuoteRequest {
                account_id: account.to_string(),
                subject_id: SUBJECT.into(),
                amount_micros: self.reserve_micros,
                items: Vec::new(),
            });
            let answer = self
                .timed(calls, quote)
                .await
                .map_err(|s| status_key(&s))?
                .into_inner();
            if !answer.affordable {
                return Err(format!("NOT_AFFORDABLE/{}", denial(answer.denial_reason)));
            }
            return Ok(());
        }
        let reserve = client.reserve(ReserveRequest {
            account_id: account.to_string(),
            reservation_id: id.to_string(),
            subject_id: SUBJECT.into(),
            amount_micros: self.reserve_micros,
            ttl_seconds: TTL_SECONDS,
            ..Default::default()
        });
        let answer = self
            .timed(calls, reserve)
            .await
            .map_err(|s| status_key(&s))?
            .into_inner();
        if answer.decision != Decision::Granted as i32 {
            return Err(format!("DENIED/{}", denial(answer.denial_reason)));
        }
        if self.scenario == Scenario::ReserveCommit {
            let commit = client.commit(CommitRequest {
                account_id: account.to_string(),
                reservation_id: id.to_string(),
                amount_micros: self.commit_micros,
                ..Default::default()
            });
            self.timed(calls, commit)
                .await
                .map_err(|s| self.commit_failed(status_key(&s)))?;
            self.charged.fetch_add(1, Ordering::Relaxed);
        } else {
            let release = client.release(ReleaseRequest {
                account_id: account.to_string(),
                reservation_id: id.to_string(),
            });
            self.timed(calls, release)
                .await
                .map_err(|s| status_key(&s))?;
        }
        Ok(())
    }

    async fn store_op(
        &self,
        store: &RedisStore,
        account: &str,
        id: &str,
        calls: &mut Vec<Duration>,
    ) -> Result<(), ErrorKey> {
        if self.scenario == Scenario::Quote {
            let quote = store.quote(Quote {
                account_id: account.to_string(),
                subject_id: SUBJECT.into(),
                amount: self.reserve_micros,
                lines: Vec::new(),
            });
            let answer = self.timed(calls, quote).await.map_err(|e| error_key(&e))?;
            if !answer.affordable {
                let reason = answer.denial.map(model_denial).unwrap_or_default();
                return Err(format!("NOT_AFFORDABLE/{reason}"));
            }
            return Ok(());
        }
        let reserve = store.reserve(requests::reserve(
            account,
            id,
            SUBJECT,
            self.reserve_micros,
            TTL_SECONDS,
        ));
        let answer = self
            .timed(calls, reserve)
            .await
            .map_err(|e| error_key(&e))?;
        if let Some(reason) = answer.denial {
            return Err(format!("DENIED/{}", model_denial(reason)));
        }
        if self.scenario == Scenario::ReserveCommit {
            let commit = store.commit(requests::commit(account, id, self.commit_micros));
            self.timed(calls, commit)
                .await
                .map_err(|e| self.commit_failed(error_key(&e)))?;
            self.charged.fetch_add(1, Ordering::Relaxed);
        } else {
            self.timed(calls, store.release(account, id))
                .await
                .map_err(|e| error_key(&e))?;
        }
        Ok(())
    }

    fn commit_failed(&self, key: ErrorKey) -> ErrorKey {
        self.uncertain.fetch_add(1, Ordering::Relaxed);
        key
    }

    /// Reads every bench account back and checks that no credit appeared or vanished.
    pub async fn check_conservation(&self) -> Result<Conservation> {
        let mut c = Conservation {
            conserved: true,
            granted_micros: 0,
            available_micros: 0,
            held_micros: 0,
            spent_micros: 0,
            expected_spent_micros: 0,
            uncertain_commits: self.uncertain.load(Ordering::Relaxed),
            problems: Vec::new(),
        };
        let charged = self.charged.load(Ordering::Relaxed);
        if self.scenario == Scenario::ReserveCommit {
            c.expected_spent_micros = charged as i64 * self.commit_micros;
        }
        let most_spent = c.expected_spent_micros + c.uncertain_commits as i64 * self.commit_micros;
        for account in &self.accounts {
            let a = self.read_account(account).await?;
            let other = a.expired + a.voided;
            if a.granted != a.available + a.held + a.spent + other {
                c.problems.push(format!(
                    "{account}: granted {} != available {} + held {} + spent {} + expired/voided {}",
                    a.granted, a.available, a.held, a.spent, other
                ));
            }
            if a.granted != GRANT_MICROS || other != 0 || a.debt != 0 {
                c.problems.push(format!(
                    "{account}: granted {} (want {GRANT_MICROS}), expired/voided {other}, debt {}",
                    a.granted, a.debt
                ));
            }
            c.granted_micros += a.granted;
            c.available_micros += a.available;
            c.held_micros += a.held;
            c.spent_micros += a.spent;
        }
        if c.spent_micros < c.expected_spent_micros || c.spent_micros > most_spent {
            c.problems.push(format!(
                "spent {} micros in total, expected {} ({charged} commits x {}, and up to {} \
                 failed commits that may have charged)",
                c.spent_micros, c.expected_spent_micros, self.commit_micros, c.uncertain_commits
            ));
        }
        c.conserved = c.problems.is_empty();
        Ok(c)
    }

    async fn read_account(&self, account: &str) -> Result<AccountTotals> {
        let mut t = AccountTotals::default();
        match &self.backend {
            Backend::Grpc { clients, admin } => {
                let balance = clients[0]
                    .clone()
                    .get_balance(GetBalanceRequest {
                        account_id: account.to_string(),
                        subject_id: String::new(),
                    })
                    .await
                    .with_context(|| format!("GetBalance {account}"))?
                    .into_inner();
                let grants = admin
                    .clone()
                    .list_grants(ListGrantsRequest {
                        account_id: account.to_string(),
                    })
                    .await
                    .with_context(|| format!("ListGrants {account}"))?
                    .into_inner()
                    .grants;
                t.available = balance.available_micros;
                t.held = balance.held_micros;
                t.debt = balance.debt_micros;
                for g in grants {
                    t.granted += g.amount_micros;
                    t.spent += g.spent_micros;
                    t.expired += g.expired_micros;
                    t.voided += g.voided_micros;
                }
            }
            Backend::Redis(store) => {
                let balance = store
                    .get_balance(account)
                    .await
                    .map_err(|e| anyhow::anyhow!("balance of {account}: {e}"))?;
                let grants = store
                    .list_grants(account)
                    .await
                    .map_err(|e| anyhow::anyhow!("grants of {account}: {e}"))?;
                t.available = balance.available;
                t.held = balance.held;
                t.debt = balance.debt;
                for g in grants {
                    t.granted += g.amount;
                    t.spent += g.spent;
                    t.expired += g.expired;
                    t.voided += g.voided;
                }
            }
        }
        if t.granted <= 0 {
            bail!("bench account {account} has no grant");
        }
        Ok(t)
    }
}

#[derive(Default)]
struct AccountTotals {
    granted: i64,
    available: i64,
    held: i64,
    spent: i64,
    expired: i64,
    voided: i64,
    debt: i64,
}

/// The conservation check over all bench accounts of one phase.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Conservation {
    pub conserved: bool,
    pub granted_micros: i64,
    pub available_micros: i64,
    pub held_micros: i64,
    pub spent_micros: i64,
    /// Successful commits × the commit amount.
    pub expected_spent_micros: i64,
    /// Commits that failed and may still have charged (a timeout, a lost connection).
    pub uncertain_commits: u64,
    pub problems: Vec<String>,
}

/// `CODE/REASON` of a gRPC error (the reason from its `ErrorInfo`, when it has one).
fn status_key(status: &Status) -> ErrorKey {
    let reason = status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default();
    format!("{}/{reason}", code_name(status.code()))
}

/// The same key for a store error, as the server would map it.
fn error_key(err: &Error) -> ErrorKey {
    format!(
        "{}/{}",
        code_name(crate::api::errors::code(err)),
        err.reason()
    )
}

fn denial(reason: i32) -> String {
    crate::proto::DenialReason::try_from(reason)
        .map(|r| r.as_str_name().to_string())
        .unwrap_or_else(|_| reason.to_string())
}

fn model_denial(reason: crate::model::DenialReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A gRPC code as its canonical name (`UNAVAILABLE`).
pub fn code_name(code: Code) -> String {
    let camel = format!("{code:?}");
    let mut out = String::new();
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_their_canonical_names() {
        assert_eq!(code_name(Code::Unavailable), "UNAVAILABLE");
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
        assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
    }
}
