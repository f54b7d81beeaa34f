//! Where balances live: one trait, two stores side by side.
//!
//! - [`memory::MemoryStore`]: the reference model behind a lock, for development and tests.
//! - [`redis::RedisStore`]: one Lua script per operation on Redis, one round trip per call.
//!
//! Every operation first settles the account (new period, expired grants, expired holds) and
//! appends an event for every change. Inputs reach a store already validated by the API layer.

pub mod memory;
pub mod redis;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::*;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn create_account(&self, req: CreateAccount) -> Result<Account>;
    async fn get_account(&self, account_id: &str) -> Result<Account>;
    async fn update_account(&self, req: UpdateAccount) -> Result<Account>;
    async fn create_grant(&self, req: CreateGrant) -> Result<Grant>;
    async fn list_grants(&self, account_id: &str) -> Result<Vec<Grant>>;
    /// `actor` (the token's name) is recorded in the audit event, as in the requests' `actor`.
    async fn void_grant(&self, account_id: &str, grant_id: &str, actor: &str) -> Result<Grant>;

    async fn quote(&self, req: Quote) -> Result<QuoteOutcome>;
    async fn reserve(&self, req: Reserve) -> Result<ReserveOutcome>;
    async fn commit(&self, req: Commit) -> Result<CommitOutcome>;
    async fn release(&self, account_id: &str, reservation_id: &str) -> Result<ReleaseOutcome>;
    async fn extend(&self, req: Extend) -> Result<Reservation>;
    async fn get_reservation(&self, account_id: &str, reservation_id: &str) -> Result<Reservation>;
    async fn get_balance(&self, account_id: &str) -> Result<Balance>;
    /// The balance with the budgets that apply to `subject_id` (one round trip too).
    async fn get_subject_balance(&self, account_id: &str, subject_id: &str) -> Result<Balance>;

    async fn set_subject_policy(
        &self,
        account_id: &str,
        policy: SubjectPolicy,
        actor: &str,
    ) -> Result<SubjectPolicy>;
    /// The subject's own policy, or an open one (spending enabled, no limits) when it has none.
    async fn get_subject_policy(&self, account_id: &str, subject_id: &str)
        -> Result<SubjectPolicy>;
    /// Records a subject's request for spending rights as an event for the account's admins.
    async fn request_spending_access(
        &self,
        account_id: &str,
        subject_id: &str,
        note: &str,
    ) -> Result<()>;

    /// The plans of the active rate card (plan id → allowance per billing period): an account on
    /// one of them gets its allowance at creation and at each new period.
    fn set_plans(&self, plans: Plans);

    /// Settles the holds that are due on every shard; returns how many accounts were settled.
    async fn reap(&self) -> Result<usize>;
    /// Cheap liveness check of the backing store.
    async fn ping(&self) -> Result<()>;
    /// The shared clock, in Unix milliseconds.
    async fn now(&self) -> Result<Millis>;
    /// Test clock control: move the shared clock forward. Refused unless the store was built
    /// with a manual clock.
    async fn advance_clock(&self, millis: i64) -> Result<()>;
    /// A short name for logs: "memory" or "redis".
    fn kind(&self) -> &'static str;
}

/// Which clock a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// Real time (Redis `TIME` for the Redis store).
    System,
    /// Frozen at this time until advanced: for tests and simulations.
    Manual(Millis),
}
