//! Shared test harness: a private `redis-server` per test, both stores on a manual clock, a
//! `creditd serve` process, and small helpers for gRPC errors and scenarios.
//!
//! Every test binary compiles this module, and none of them uses all of it.
#![allow(dead_code)]

pub mod certs;
pub mod creditd;
pub mod grpc;
pub mod ledger;
pub mod postgres;
pub mod redis_server;
pub mod requests;
pub mod stores;
pub mod workload;

use std::time::{Duration, Instant};

/// Runs each named scenario, an `async fn name(s: &dyn Store)` of the calling test file, once on
/// the memory store and once on the Redis store (each with its own `redis-server`).
#[allow(unused_macros)]
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = crate::common::stores::TestStore::memory();
                    super::$name(t.store()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = crate::common::stores::TestStore::redis().await;
                    super::$name(t.store()).await;
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use suite;

/// The fixed start of every manual clock: 2026-01-15T00:00:00Z, in Unix milliseconds.
pub const T0: i64 = 1_768_435_200_000;
/// One credit, in micro-credits.
pub const CREDIT: i64 = 1_000_000;
pub const SECOND: i64 = 1_000;
pub const DAY: i64 = 86_400_000;

/// How long any wait for a process or a state change may take before the test fails. Generous:
/// the tests run on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(60);

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free TCP port on 127.0.0.1 (bound once and released, so a small race remains; the
/// process starters retry on a fresh port when the bind fails).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Finds an executable on PATH.
pub fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
