//! Both stores on a manual clock at [`T0`], so tests control time with `advance_clock` and never
//! by sleeping.

use std::sync::Arc;

use creditd::store::memory::MemoryStore;
use creditd::store::redis::RedisStore;
use creditd::store::{ClockMode, Store};

use super::redis_server::RedisServer;
use super::T0;

/// Virtual shards used by the tests' Redis stores.
pub const SHARDS: u32 = 4;

pub fn memory_store() -> Arc<dyn Store> {
    memory_store_at(T0)
}

pub fn memory_store_at(t: i64) -> Arc<dyn Store> {
    Arc::new(MemoryStore::new(ClockMode::Manual(t)))
}

pub async fn redis_store(url: &str) -> Arc<dyn Store> {
    redis_store_at(url, T0).await
}

pub async fn redis_store_at(url: &str, t: i64) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::new(url, SHARDS, ClockMode::Manual(t))
            .await
            .expect("RedisStore::new"),
    )
}

/// A store under test, with the private Redis that backs it (if any) kept alive beside it.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub redis: Option<RedisServer>,
}

impl TestStore {
    pub fn memory() -> Self {
        TestStore {
            store: memory_store(),
            redis: None,
        }
    }

    /// A Redis store on its own, fresh `redis-server`.
    pub async fn redis() -> Self {
        let server = RedisServer::start();
        let store = redis_store(&server.url()).await;
        TestStore {
            store,
            redis: Some(server),
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}
