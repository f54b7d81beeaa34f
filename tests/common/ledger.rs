//! A ledger under test: a private redis-server and a private PostgreSQL (schema migrated), the
//! Redis store on a manual clock, and a reconciler that books the streams on demand.

use std::sync::Arc;
use std::time::Duration;

use creditd::ledger::reconciler::{Config, Reconciler, Totals};
use creditd::ledger::Ledger;
use creditd::store::redis::RedisStore;
use creditd::store::{ClockMode, Store};

use super::postgres::PostgresServer;
use super::redis_server::RedisServer;
use super::stores::SHARDS;
use super::T0;

pub struct LedgerEnv {
    pub redis: RedisServer,
    pub pg: PostgresServer,
    pub ledger: Ledger,
    pub store: Arc<RedisStore>,
}

impl LedgerEnv {
    pub async fn start() -> Self {
        let redis = RedisServer::start();
        let pg = PostgresServer::start();
        let ledger = Ledger::connect(&pg.url(), 4).expect("ledger pool");
        ledger.migrate().await.expect("migrate");
        let store = Arc::new(
            RedisStore::new(&redis.url(), SHARDS, ClockMode::Manual(T0))
                .await
                .expect("RedisStore::new"),
        );
        LedgerEnv {
            redis,
            pg,
            ledger,
            store,
        }
    }

    /// `creditd check` over every account: the ledger against Redis, waiting up to `settle` for
    /// events not booked yet.
    pub async fn check(&self, settle: Duration) -> anyhow::Result<creditd::ledger::drift::Report> {
        creditd::ledger::drift::check_accounts(
            &self.ledger,
            &self.redis.url(),
            SHARDS,
            None,
            settle,
        )
        .await
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// A reconciler config for this environment: small batches, quick take-over.
    pub fn config(&self) -> Config {
        let mut cfg = Config::new(&self.redis.url(), SHARDS);
        cfg.batch_size = 50;
        cfg.claim_idle = Duration::from_millis(200);
        cfg.max_deliveries = 3;
        cfg.block = Duration::from_millis(100);
        cfg.drift_interval = None;
        cfg
    }

    pub async fn reconciler(&self) -> Reconciler {
        Reconciler::new(self.config(), self.ledger.clone())
            .await
            .expect("reconciler")
    }

    /// Books everything the streams hold now.
    pub async fn drain(&self) -> Totals {
        self.reconciler().await.drain().await.expect("drain")
    }

    pub async fn pg(&self) -> deadpool_postgres::Object {
        self.ledger.client().await.expect("ledger connection")
    }

    /// A count from the ledger (`SELECT count(*) ...` or any single bigint).
    pub async fn count(&self, sql: &str) -> i64 {
        self.pg()
            .await
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }
}
