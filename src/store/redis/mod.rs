//! The Redis store: one Lua script per operation (in progress; the interface is final).

use async_trait::async_trait;

use super::{ClockMode, Store};
use crate::error::{Error, Result};
use crate::model::*;

pub struct RedisStore {
    _shards: u32,
}

impl RedisStore {
    /// Builds the store. Fails only on a malformed URL or a shard count of 0: the connection is
    /// made (and remade) on demand, so a Redis that starts late does not stop creditd.
    pub async fn new(_url: &str, shards: u32, _clock: ClockMode) -> Result<Self> {
        Ok(RedisStore { _shards: shards })
    }
}

fn todo_err<T>() -> Result<T> {
    Err(Error::Unavailable("redis store not built yet".into()))
}

#[async_trait]
impl Store for RedisStore {
    async fn create_account(&self, _req: CreateAccount) -> Result<Account> {
        todo_err()
    }
    async fn get_account(&self, _a: &str) -> Result<Account> {
        todo_err()
    }
    async fn update_account(&self, _req: UpdateAccount) -> Result<Account> {
        todo_err()
    }
    async fn create_grant(&self, _req: CreateGrant) -> Result<Grant> {
        todo_err()
    }
    async fn list_grants(&self, _a: &str) -> Result<Vec<Grant>> {
        todo_err()
    }
    async fn void_grant(&self, _a: &str, _g: &str) -> Result<Grant> {
        todo_err()
    }
    async fn quote(&self, _req: Quote) -> Result<QuoteOutcome> {
        todo_err()
    }
    async fn reserve(&self, _req: Reserve) -> Result<ReserveOutcome> {
        todo_err()
    }
    async fn commit(&self, _req: Commit) -> Result<CommitOutcome> {
        todo_err()
    }
    async fn release(&self, _a: &str, _r: &str) -> Result<ReleaseOutcome> {
        todo_err()
    }
    async fn extend(&self, _req: Extend) -> Result<Reservation> {
        todo_err()
    }
    async fn get_reservation(&self, _a: &str, _r: &str) -> Result<Reservation> {
        todo_err()
    }
    async fn get_balance(&self, _a: &str) -> Result<Balance> {
        todo_err()
    }
    async fn reap(&self) -> Result<usize> {
        todo_err()
    }
    async fn ping(&self) -> Result<()> {
        todo_err()
    }
    async fn now(&self) -> Result<Millis> {
        todo_err()
    }
    async fn advance_clock(&self, _m: i64) -> Result<()> {
        todo_err()
    }
    fn kind(&self) -> &'static str {
        "redis"
    }
}
