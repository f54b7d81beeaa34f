//! The Postgres ledger: the system of record, fed asynchronously from the Redis shard streams.
//!
//! - [`book`]: what each stream entry becomes (pure): events, double-entry postings, charges by
//!   SKU, grant terms, account heads and the records a rebuild writes back.
//! - [`apply`]: one batch of entries in one transaction, idempotent per event id.
//! - [`reconciler`]: the consumer-group loop over the shard streams (`creditd reconcile`).
//! - [`streams`]: the consumer group, stream status (pending, undelivered, trim point).
//! - [`drift`]: Redis against the ledger, account by account (`creditd check`).
//! - [`rebuild`]: Redis from the ledger (`creditd rebuild`, and accounts missing from Redis).

pub mod apply;
pub mod book;
pub mod commands;
pub mod drift;
pub mod rebuild;
pub mod reconciler;
pub mod redis_state;
pub mod reports;
pub mod streams;
pub mod tls;

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// A pool of connections to the ledger database.
#[derive(Clone)]
pub struct Ledger {
    pool: Pool,
}

impl std::fmt::Debug for Ledger {
    /// The pool's size only: never the URL, which may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("max_connections", &self.pool.status().max_size)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// A pool for `url` (`postgres://user:password@host:port/db`; `?sslmode=require` for TLS,
    /// see [`tls`]). Connections are made on demand, so a database that is down at start-up does
    /// not stop the caller.
    pub fn connect(url: &str, max_connections: usize) -> Result<Self> {
        let target = tls::parse(url)?;
        let config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match target.tls {
            Some(tls) => Manager::from_config(target.config, tls, config),
            None => Manager::from_config(target.config, NoTls, config),
        };
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .build()
            .context("building the Postgres pool")?;
        Ok(Ledger { pool })
    }

    pub async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .context("connecting to the ledger database")
    }

    /// Applies the schema migrations that are not applied yet (safe to run twice, and from two
    /// processes at once: an advisory lock serialises them). Returns the versions applied now.
    pub async fn migrate(&self) -> Result<Vec<String>> {
        let mut client = self.client().await?;
        client
            .execute("SELECT pg_advisory_lock(7426010)", &[])
            .await
            .context("taking the migration lock")?;
        let report = embedded::migrations::runner()
            .run_async(&mut **client)
            .await;
        let _ = client
            .execute("SELECT pg_advisory_unlock(7426010)", &[])
            .await;
        let report = report.context("applying migrations")?;
        Ok(report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect())
    }
}

/// True when a Postgres error is worth retrying the same batch for (connection lost, a deadlock
/// between replicas, a serialization failure); false for a fault of the data itself.
pub fn is_transient(e: &anyhow::Error) -> bool {
    for cause in e.chain() {
        if let Some(pg) = cause.downcast_ref::<tokio_postgres::Error>() {
            if pg.is_closed() {
                return true;
            }
            return match pg.code() {
                Some(code) => {
                    let c = code.code();
                    c.starts_with("08") // connection exception
                        || c.starts_with("57") // operator intervention (shutdown)
                        || c.starts_with("53") // insufficient resources
                        || c == "40001" // serialization failure
                        || c == "40P01" // deadlock
                }
                None => true, // I/O: no SQLSTATE
            };
        }
        if cause.downcast_ref::<apply::RaceLost>().is_some() {
            return true;
        }
        if cause
            .downcast_ref::<deadpool_postgres::PoolError>()
            .is_some()
        {
            return true;
        }
    }
    false
}
