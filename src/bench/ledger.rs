//! `creditd bench-ledger`: can the reconciler keep up with the hot path on the same machine?
//!
//! Two phases in one run, each with the whole machine: (1) the hot path, Reserve+Commit pairs
//! through the Redis store (the same scripts `serve` runs, without gRPC, so the fastest the
//! hot path can produce events), and (2) the reconciler booking the backlog those pairs left in
//! the streams. The report gives both rates in events per second and their ratio; above 1 the
//! reconciler books events faster than the hot path produces them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use super::requests;
use crate::ledger::commands::{DatabaseArgs, RedisArgs};
use crate::ledger::reconciler::{self, Config, Reconciler};
use crate::ledger::Ledger;
use crate::store::redis::RedisStore;
use crate::store::{ClockMode, Store};

#[derive(Clone, clap::Args)]
pub struct BenchLedgerArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Reserve+Commit pairs to run in the hot-path phase.
    #[arg(long, default_value_t = 20_000)]
    pub pairs: u64,
    /// Concurrent callers in the hot-path phase.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Accounts the pairs are spread over.
    #[arg(long, default_value_t = 64)]
    pub accounts: usize,
    /// Most entries per read of the streams.
    #[arg(long, default_value_t = 2000)]
    pub batch_size: usize,
    /// Ledger transactions booking one read at once.
    #[arg(long, default_value_t = 2)]
    pub parallelism: usize,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchLedgerReport {
    pub pairs: u64,
    pub concurrency: usize,
    pub hot_path_seconds: f64,
    pub hot_path_pairs_per_s: f64,
    pub hot_path_events_per_s: f64,
    pub reconcile_seconds: f64,
    pub reconcile_events: u64,
    pub reconcile_events_per_s: f64,
    pub batch_size: usize,
    pub parallelism: usize,
    /// Reconciler events/s over hot-path events/s (above 1: it keeps up).
    pub ratio: f64,
    pub errors: u64,
}

impl BenchLedgerReport {
    /// One JSON object (`json`), or a few lines for a reader.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::to_string(self).expect("a report encodes"));
            return;
        }
        println!(
            "hot path: {} pairs in {:.2} s = {:.0} pairs/s = {:.0} events/s ({} errors)",
            self.pairs,
            self.hot_path_seconds,
            self.hot_path_pairs_per_s,
            self.hot_path_events_per_s,
            self.errors
        );
        println!(
            "reconciler: {} events in {:.2} s = {:.0} events/s (batch {}, {} transactions at once)",
            self.reconcile_events,
            self.reconcile_seconds,
            self.reconcile_events_per_s,
            self.batch_size,
            self.parallelism
        );
        println!("ratio reconciler / hot path: {:.2}", self.ratio);
    }
}

pub async fn run(args: BenchLedgerArgs) -> Result<BenchLedgerReport> {
    let ledger = Ledger::connect(&args.db.database_url, args.parallelism.max(1) + 1)?;
    ledger.migrate().await?;
    let store = Arc::new(
        RedisStore::new(&args.redis.redis_url, args.redis.shards, ClockMode::System)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    // The group must exist before the load, so that the second phase books all of it.
    let mut conn = store
        .connection()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    reconciler::ensure_groups(&mut conn, args.redis.shards).await?;
    // Book what is already there, so the second phase measures only this run's events.
    let mut cfg = Config::new(&args.redis.redis_url, args.redis.shards);
    cfg.batch_size = args.batch_size.max(1);
    cfg.parallelism = args.parallelism.max(1);
    cfg.drift_interval = None;
    Reconciler::new(cfg.clone(), ledger.clone())
        .await?
        .drain()
        .await?;

    let run = format!("bench-{:08x}", rand::random::<u32>());
    let accounts: Vec<String> = (0..args.accounts.max(1))
        .map(|i| format!("{run}-{i}"))
        .collect();
    for a in &accounts {
        store
            .create_account(requests::account(a))
            .await
            .context("creating a bench account")?;
        store
            .create_grant(requests::prepaid(a, "bench", 1_000_000_000_000_000, 0))
            .await
            .context("creating a bench grant")?;
    }

    // Phase 1: the hot path.
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let accounts = Arc::new(accounts);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (store, next, errors, accounts) = (
            store.clone(),
            next.clone(),
            errors.clone(),
            accounts.clone(),
        );
        let pairs = args.pairs;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= pairs {
                    break;
                }
                let account = &accounts[i as usize % accounts.len()];
                let id = format!("p{i}");
                let ok = store
                    .reserve(requests::reserve(account, &id, "bench", 2_000_000, 300))
                    .await
                    .is_ok()
                    && store
                        .commit(requests::commit(account, &id, 1_000_000))
                        .await
                        .is_ok();
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let hot = started.elapsed().as_secs_f64();

    // Phase 2: the reconciler books the backlog.
    let started = Instant::now();
    let totals = Reconciler::new(cfg, ledger).await?.drain().await?;
    let booking = started.elapsed().as_secs_f64();

    // Each pair is two events (reserved, committed).
    let hot_events = 2.0 * args.pairs as f64 / hot;
    let booked = totals.events as f64 / booking;
    Ok(BenchLedgerReport {
        pairs: args.pairs,
        concurrency: args.concurrency,
        hot_path_seconds: hot,
        hot_path_pairs_per_s: args.pairs as f64 / hot,
        hot_path_events_per_s: hot_events,
        reconcile_seconds: booking,
        reconcile_events: totals.events,
        reconcile_events_per_s: booked,
        batch_size: args.batch_size,
        parallelism: args.parallelism,
        ratio: booked / hot_events,
        errors: errors.load(Ordering::Relaxed),
    })
}
