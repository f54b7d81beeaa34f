//! The Redis store: one Lua function per operation, one round trip (an FCALL) per call.
//!
//! The operations are functions of one library, `lib.lua` and each operation's own file, loaded
//! once with FUNCTION LOAD (see [`library`]: on "Function not found" the library is loaded and
//! the call made once more). An account lives on one of S virtual shards; all its keys, its
//! shard's due set, event stream and clock share the shard's hash tag, so every call is
//! single-slot and the layout works unchanged on Redis Cluster. See [`keys`] for the layout.

mod keys;
pub mod library;
pub mod restore;
pub mod stream;

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::{ClockMode, Store};
use crate::error::{Error, Result};
use crate::model::*;
pub use keys::{events as events_key, shard_of, AccountKeys};
use library::{Function, Library};

/// Most accounts the reaper settles per shard and pass.
const REAP_BATCH: usize = 1000;

/// The account operations, each a function of the library (see [`library`]).
struct Functions {
    create_account: Function,
    get_account: Function,
    update_account: Function,
    create_grant: Function,
    list_grants: Function,
    void_grant: Function,
    quote: Function,
    reserve: Function,
    commit: Function,
    release: Function,
    extend: Function,
    get_reservation: Function,
    get_balance: Function,
    settle: Function,
    set_policy: Function,
    get_policy: Function,
    request_access: Function,
}

impl Functions {
    fn new(lib: &Library) -> Self {
        Functions {
            create_account: lib.function("create_account"),
            get_account: lib.function("get_account"),
            update_account: lib.function("update_account"),
            create_grant: lib.function("create_grant"),
            list_grants: lib.function("list_grants"),
            void_grant: lib.function("void_grant"),
            quote: lib.function("quote"),
            reserve: lib.function("reserve"),
            commit: lib.function("commit"),
            release: lib.function("release"),
            extend: lib.function("extend"),
            get_reservation: lib.function("get_reservation"),
            get_balance: lib.function("get_balance"),
            settle: lib.function("settle"),
            set_policy: lib.function("set_policy"),
            get_policy: lib.function("get_policy"),
            request_access: lib.function("request_access"),
        }
    }
}

/// What every script returns: `{ok = value}` or `{err = reason, field, detail}` (msgpack).
#[derive(Deserialize)]
struct Reply<T> {
    ok: Option<T>,
    err: Option<String>,
    #[serde(default)]
    field: String,
    #[serde(default)]
    detail: String,
}

/// Where an account that Redis does not hold may still exist: the ledger. When Redis answers
/// ACCOUNT_NOT_FOUND, the store asks the loader to write the account back and tries once more.
#[async_trait]
pub trait AccountLoader: Send + Sync + 'static {
    /// Writes the account into Redis when Redis lacks it and the record has it; true when it did.
    async fn load_missing(&self, account_id: &str) -> Result<bool>;
}

pub struct RedisStore {
    client: redis::Client,
    loader: std::sync::OnceLock<std::sync::Arc<dyn AccountLoader>>,
    conn: OnceCell<ConnectionManager>,
    /// With `--redis-pool-size N`: the scripts go over a deadpool pool of N connections
    /// instead of the multiplexed one (kept to measure the two; the multiplexed is faster).
    pool: Option<deadpool_redis::Pool>,
    shards: u32,
    library: Library,
    functions: Functions,
    /// The shard's accounts with holds due: a plain script (it touches no account).
    due_accounts: Script,
    /// The rate card's plans, msgpack-encoded for the scripts (empty: none).
    plans: std::sync::RwLock<Vec<u8>>,
}

impl RedisStore {
    /// Builds the store. Fails only on a malformed URL or a shard count of 0: the connection is
    /// made (and remade) on demand, so a Redis that starts late does not stop creditd. With a
    /// manual clock (tests), it connects now and sets every shard's clock.
    pub async fn new(url: &str, shards: u32, clock: ClockMode) -> Result<Self> {
        if shards == 0 {
            return Err(Error::invalid("shards", "must be at least 1"));
        }
        let client =
            redis::Client::open(url).map_err(|e| Error::invalid("redis_url", e.to_string()))?;
        let library = Library::new();
        let store = RedisStore {
            client,
            loader: std::sync::OnceLock::new(),
            conn: OnceCell::new(),
            pool: None,
            shards,
            functions: Functions::new(&library),
            library,
            due_accounts: Script::new(include_str!("due_accounts.lua")),
            plans: std::sync::RwLock::new(Vec::new()),
        };
        if let ClockMode::Manual(t) = clock {
            let mut conn = store.conn().await?;
            let mut pipe = redis::pipe();
            for shard in 0..shards {
                pipe.set(keys::clock(shard), t).ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(store_error)?;
        }
        Ok(store)
    }

    /// The multiplexed connection, made on first use and remade by the manager after a failure.
    async fn conn(&self) -> Result<ConnectionManager> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Duration::from_millis(500))
                    .set_response_timeout(Duration::from_secs(2))
                    .set_number_of_retries(1)
                    .set_factor(50)
                    .set_max_delay(200);
                self.client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(store_error)
            })
            .await?;
        Ok(conn.clone())
    }

    /// Sends the scripts over a pool of `size` connections (one call per connection at a
    /// time) instead of the one multiplexed connection; 0 keeps the multiplexed connection.
    /// Connections are made on demand, like the multiplexed one.
    pub fn use_pool(&mut self, size: usize) -> Result<()> {
        if size == 0 {
            self.pool = None;
            return Ok(());
        }
        let mut config =
            deadpool_redis::Config::from_connection_info(self.client.get_connection_info().clone());
        config.pool = Some(deadpool_redis::PoolConfig {
            max_size: size,
            timeouts: deadpool_redis::Timeouts {
                wait: Some(Duration::from_secs(2)),
                create: Some(Duration::from_millis(500)),
                recycle: Some(Duration::from_millis(500)),
            },
            ..Default::default()
        });
        let pool = config
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|e| Error::invalid("redis_url", e.to_string()))?;
        self.pool = Some(pool);
        Ok(())
    }

    /// Loads accounts missing from Redis from the ledger on first use (set once).
    pub fn set_loader(&self, loader: std::sync::Arc<dyn AccountLoader>) {
        let _ = self.loader.set(loader);
    }

    /// A clone of the multiplexed connection (for the ledger's tools in the same process).
    pub async fn connection(&self) -> Result<ConnectionManager> {
        self.conn().await
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// Asks the loader, if any, to write back an account Redis does not hold.
    async fn load_missing(&self, account_id: &str) -> Result<bool> {
        match self.loader.get() {
            Some(loader) => loader.load_missing(account_id).await,
            None => Ok(false),
        }
    }

    pub fn keys(&self, account_id: &str) -> AccountKeys {
        AccountKeys::new(account_id, self.shards)
    }

    /// Runs an account operation: the account's ten keys, then the account id, the plans and
    /// the operation's own arguments.
    async fn call<T: DeserializeOwned>(
        &self,
        function: &Function,
        account_id: &str,
        args: &[String],
    ) -> Result<T> {
        match self.call_once(function, account_id, args).await {
            Err(Error::AccountNotFound) if self.load_missing(account_id).await? => {
                self.call_once(function, account_id, args).await
            }
            other => other,
        }
    }

    async fn call_once<T: DeserializeOwned>(
        &self,
        function: &Function,
        account_id: &str,
        args: &[String],
    ) -> Result<T> {
        let keys = self.keys(account_id);
        let all = keys.all();
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(function.name()).arg(all.len()).arg(&all[..]);
        {
            let plans = self.plans.read().unwrap_or_else(|e| e.into_inner());
            cmd.arg(account_id).arg(plans.as_slice());
        }
        for a in args {
            cmd.arg(a.as_str());
        }
        let raw: Vec<u8> = match &self.pool {
            None => self.fcall(&cmd, &mut self.conn().await?).await?,
            Some(pool) => {
                let mut conn = pool.get().await.map_err(pool_error)?;
                self.fcall(&cmd, &mut conn).await?
            }
        };
        let reply: Reply<T> = rmp_serde::from_slice(&raw)
            .map_err(|e| Error::Internal(format!("undecodable script reply: {e}")))?;
        match (reply.ok, reply.err) {
            (_, Some(reason)) => Err(Error::from_reason(&reason, &reply.field, &reply.detail)),
            (Some(v), None) => Ok(v),
            (None, None) => Err(Error::Internal("empty script reply".into())),
        }
    }

    /// One FCALL; when Redis does not hold the library, loads it and calls once more.
    async fn fcall<C: redis::aio::ConnectionLike>(
        &self,
        cmd: &redis::Cmd,
        conn: &mut C,
    ) -> Result<Vec<u8>> {
        match cmd.query_async(conn).await {
            Err(e) if library::is_missing(&e) => {
                self.library.load(conn).await.map_err(store_error)?;
                cmd.query_async(conn).await.map_err(store_error)
            }
            other => other.map_err(store_error),
        }
    }

    /// Every event still in the shard streams for `account_id`, in sequence order (for tests
    /// and tools; the reconciler reads the streams with a consumer group instead).
    pub async fn events(&self, account_id: &str) -> Result<Vec<Event>> {
        let keys = self.keys(account_id);
        let mut conn = self.conn().await?;
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&keys.events)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        let mut out = Vec::new();
        for entry in &reply.ids {
            let entry = stream::Entry::decode(entry).map_err(Error::Internal)?;
            if entry.account_id == account_id {
                out.extend(entry.events()?);
            }
        }
        out.sort_by_key(|e| e.seq);
        Ok(out)
    }

    async fn shard_now(&self, shard: u32) -> Result<Millis> {
        let mut conn = self.conn().await?;
        let frozen: Option<i64> = redis::cmd("GET")
            .arg(keys::clock(shard))
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        if let Some(t) = frozen {
            return Ok(t);
        }
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(secs * 1000 + micros / 1000)
    }
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

fn opt(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// A value as JSON for a script's `cjson.decode` (exact for the integers creditd uses: below 2^53).
fn pack<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(format!("json: {e}")))
}

/// A list as JSON for a script, or '' when empty.
fn json_or_empty<T: serde::Serialize>(items: &[T]) -> Result<String> {
    if items.is_empty() {
        Ok(String::new())
    } else {
        pack(&items)
    }
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

/// A connection the pool could not hand out: Redis unreachable, or every connection busy for
/// the wait timeout.
fn pool_error(e: deadpool_redis::PoolError) -> Error {
    match e {
        deadpool_redis::PoolError::Backend(e) => store_error(e),
        other => {
            metrics::counter!("creditd_redis_errors_total", "kind" => "unavailable").increment(1);
            Error::Unavailable(format!("redis pool: {other}"))
        }
    }
}

/// Classifies a Redis error: connection trouble is transient (`Unavailable`), the rest is a bug.
fn store_error(e: redis::RedisError) -> Error {
    if e.to_string().contains("CREDITD_REBUILDING") {
        return Error::Unavailable("the account is being rebuilt from the ledger".into());
    }
    let transient = e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::BusyLoadingError
                | redis::ErrorKind::TryAgain
                | redis::ErrorKind::MasterDown
        );
    let kind = if transient { "unavailable" } else { "internal" };
    metrics::counter!("creditd_redis_errors_total", "kind" => kind).increment(1);
    if transient {
        Error::Unavailable(e.to_string())
    } else {
        Error::Internal(format!("redis: {e}"))
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        let args = [
            req.parent_id.clone(),
            req.plan_id.clone(),
            opt(req.billing_anchor),
            flag(req.overage_enabled),
            s(req.overage_cap),
            flag(req.suspended),
            req.actor.clone(),
        ];
        // An account the ledger holds but Redis lost is written back first, so that creating it
        // again is the idempotent replay it should be, not a second account under the same id.
        self.load_missing(&req.account_id).await?;
        self.call(&self.functions.create_account, &req.account_id, &args)
            .await
    }

    async fn get_account(&self, account_id: &str) -> Result<Account> {
        self.call(&self.functions.get_account, account_id, &[])
            .await
    }

    async fn update_account(&self, req: UpdateAccount) -> Result<Account> {
        let args = [
            req.overage_enabled.map(flag).unwrap_or_default(),
            opt(req.overage_cap),
            req.suspended.map(flag).unwrap_or_default(),
            req.parent_id.clone().unwrap_or_default(),
            flag(req.parent_id.is_some()),
            match &req.thresholds {
                Some(levels) => pack(levels)?,
                None => String::new(),
            },
            opt(req.allowance_alert_percent),
            opt(req.top_up.map(|t| t.0)),
            opt(req.top_up.map(|t| t.1)),
            req.actor.clone(),
        ];
        self.call(&self.functions.update_account, &req.account_id, &args)
            .await
    }

    async fn create_grant(&self, req: CreateGrant) -> Result<Grant> {
        let priority = req.priority.unwrap_or_else(|| req.kind.default_priority());
        let args = [
            req.grant_id.clone(),
            s(req.kind.as_str()),
            s(req.amount),
            s(priority),
            opt(req.effective_at),
            opt(req.expires_at),
            s(req.unit_price),
            req.actor.clone(),
        ];
        self.call(&self.functions.create_grant, &req.account_id, &args)
            .await
    }

    async fn list_grants(&self, account_id: &str) -> Result<Vec<Grant>> {
        self.call(&self.functions.list_grants, account_id, &[])
            .await
    }

    async fn void_grant(&self, account_id: &str, grant_id: &str, actor: &str) -> Result<Grant> {
        self.call(
            &self.functions.void_grant,
            account_id,
            &[s(grant_id), s(actor)],
        )
        .await
    }

    async fn quote(&self, req: Quote) -> Result<QuoteOutcome> {
        let args = [
            req.subject_id.clone(),
            s(req.amount),
            json_or_empty(&req.lines)?,
        ];
        self.call(&self.functions.quote, &req.account_id, &args)
            .await
    }

    async fn reserve(&self, req: Reserve) -> Result<ReserveOutcome> {
        let mut args = vec![
            req.reservation_id.clone(),
            req.subject_id.clone(),
            s(req.amount),
            s(req.min_amount),
            s(req.ttl_seconds),
            json_or_empty(&req.lines)?,
            req.card_version.clone(),
            s(req.labels.len()),
        ];
        for (k, v) in &req.labels {
            args.push(k.clone());
            args.push(v.clone());
        }
        self.call(&self.functions.reserve, &req.account_id, &args)
            .await
    }

    async fn commit(&self, req: Commit) -> Result<CommitOutcome> {
        let overrun = match req.overrun {
            Overrun::Charge => "CHARGE",
            Overrun::Cap => "CAP",
        };
        let args = [
            req.reservation_id.clone(),
            s(req.amount),
            req.capture_id.clone().unwrap_or_default(),
            s(overrun),
            s(req.cost),
            json_or_empty(&req.lines)?,
        ];
        self.call(&self.functions.commit, &req.account_id, &args)
            .await
    }

    async fn release(&self, account_id: &str, reservation_id: &str) -> Result<ReleaseOutcome> {
        self.call(&self.functions.release, account_id, &[s(reservation_id)])
            .await
    }

    async fn extend(&self, req: Extend) -> Result<Reservation> {
        let args = [req.reservation_id.clone(), s(req.ttl_seconds)];
        self.call(&self.functions.extend, &req.account_id, &args)
            .await
    }

    async fn get_reservation(&self, account_id: &str, reservation_id: &str) -> Result<Reservation> {
        self.call(
            &self.functions.get_reservation,
            account_id,
            &[s(reservation_id)],
        )
        .await
    }

    async fn get_balance(&self, account_id: &str) -> Result<Balance> {
        self.call(&self.functions.get_balance, account_id, &[String::new()])
            .await
    }

    async fn get_subject_balance(&self, account_id: &str, subject_id: &str) -> Result<Balance> {
        self.call(&self.functions.get_balance, account_id, &[s(subject_id)])
            .await
    }

    async fn set_subject_policy(
        &self,
        account_id: &str,
        policy: SubjectPolicy,
        actor: &str,
    ) -> Result<SubjectPolicy> {
        let args = [policy.subject_id.clone(), pack(&policy)?, s(actor)];
        self.call(&self.functions.set_policy, account_id, &args)
            .await
    }

    async fn get_subject_policy(
        &self,
        account_id: &str,
        subject_id: &str,
    ) -> Result<SubjectPolicy> {
        self.call(&self.functions.get_policy, account_id, &[s(subject_id)])
            .await
    }

    async fn request_spending_access(
        &self,
        account_id: &str,
        subject_id: &str,
        note: &str,
    ) -> Result<()> {
        let _: bool = self
            .call(
                &self.functions.request_access,
                account_id,
                &[s(subject_id), s(note)],
            )
            .await?;
        Ok(())
    }

    fn set_plans(&self, plans: Plans) {
        let packed = if plans.is_empty() {
            Vec::new()
        } else {
            rmp_serde::to_vec_named(&plans).unwrap_or_default()
        };
        if let Ok(mut p) = self.plans.write() {
            *p = packed;
        }
    }

    async fn reap(&self) -> Result<usize> {
        let mut settled = 0;
        for shard in 0..self.shards {
            let mut conn = self.conn().await?;
            let due: Vec<String> = self
                .due_accounts
                .key(keys::due(shard))
                .key(keys::clock(shard))
                .arg(REAP_BATCH)
                .invoke_async(&mut conn)
                .await
                .map_err(store_error)?;
            for account in due {
                let _: i64 = self.call(&self.functions.settle, &account, &[]).await?;
                settled += 1;
            }
        }
        Ok(settled)
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn now(&self) -> Result<Millis> {
        self.shard_now(0).await
    }

    async fn advance_clock(&self, millis: i64) -> Result<()> {
        let mut conn = self.conn().await?;
        let frozen: Option<i64> = redis::cmd("GET")
            .arg(keys::clock(0))
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        if frozen.is_none() {
            return Err(Error::invalid("clock", "the store runs on Redis TIME"));
        }
        let mut pipe = redis::pipe();
        for shard in 0..self.shards {
            pipe.incr(keys::clock(shard), millis).ignore();
        }
        pipe.query_async::<()>(&mut conn).await.map_err(store_error)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
