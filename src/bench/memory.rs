//! `creditd bench-memory`: what creditd keeps in Redis, measured by Redis (`MEMORY USAGE`, exact:
//! `SAMPLES 0`): per idle account (its record, one grant, and the empty rest), and per resolved
//! reservation (a committed hold, kept for idempotent replays), plus the event stream per call
//! while no reconciler trims it.

use anyhow::{anyhow, Result};
use redis::aio::ConnectionManager;

use super::requests;
use crate::store::redis::{AccountKeys, RedisStore};
use crate::store::{ClockMode, Store};

#[derive(Clone, clap::Args)]
pub struct BenchMemoryArgs {
    /// Redis URL (use a Redis of its own: the bench writes accounts there).
    #[arg(long, env = "CREDITD_REDIS_URL", hide_env_values = true)]
    pub redis_url: String,
    /// Virtual shards (as the server's).
    #[arg(long, default_value_t = 16)]
    pub shards: u32,
    /// Idle accounts to create and measure.
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// Reserve+Commit pairs on one account, to measure a resolved reservation.
    #[arg(long, default_value_t = 10_000)]
    pub reservations: usize,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MemoryReport {
    pub accounts: usize,
    /// Bytes per idle account: its record, one grant, no holds (all its keys).
    pub bytes_per_idle_account: f64,
    pub account_record_bytes: f64,
    pub grants_hash_bytes: f64,
    pub reservations: usize,
    /// Bytes each resolved (committed) reservation adds to its account's hash.
    pub bytes_per_resolved_reservation: f64,
    /// Bytes each call adds to its shard's stream while no reconciler trims it.
    pub stream_bytes_per_entry: f64,
}

impl MemoryReport {
    /// One JSON object (`json`), or a few lines for a reader.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::to_string(self).expect("a report encodes"));
            return;
        }
        println!(
            "idle account: {:.0} bytes (record {:.0}, grants {:.0}) over {} accounts",
            self.bytes_per_idle_account,
            self.account_record_bytes,
            self.grants_hash_bytes,
            self.accounts
        );
        println!(
            "resolved reservation: {:.0} bytes each over {}",
            self.bytes_per_resolved_reservation, self.reservations
        );
        println!(
            "stream entry (until the reconciler trims it): {:.0} bytes",
            self.stream_bytes_per_entry
        );
    }
}

pub async fn run(args: BenchMemoryArgs) -> Result<MemoryReport> {
    let store = RedisStore::new(&args.redis_url, args.shards, ClockMode::System)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let mut conn = store.connection().await.map_err(|e| anyhow!("{e}"))?;
    let run = format!("mem-{:08x}", rand::random::<u32>());

    // Idle accounts: created, granted, never used.
    let (mut record, mut grants, mut total) = (0u64, 0u64, 0u64);
    for i in 0..args.accounts.max(1) {
        let account = format!("{run}-{i}");
        create(&store, &account).await?;
        let keys = store.keys(&account);
        let sizes = usage(&mut conn, &keys).await?;
        record += sizes[0];
        grants += sizes[1];
        total += sizes.iter().sum::<u64>();
    }
    let n = args.accounts.max(1) as f64;

    // Resolved reservations on one account.
    let account = format!("{run}-busy");
    create(&store, &account).await?;
    let keys = store.keys(&account);
    let before = usage(&mut conn, &keys).await?[2];
    let stream_before = stream_usage(&mut conn, &keys.events).await?;
    for i in 0..args.reservations.max(1) {
        let id = format!("r{i}");
        let mut hold = requests::reserve(&account, &id, "user-1", 2_000_000, 300);
        hold.labels = [("feature".to_string(), "grid".to_string())].into();
        store
            .reserve(hold)
            .await
            .map_err(|e| anyhow!("reserve: {e}"))?;
        store
            .commit(requests::commit(&account, &id, 1_000_000))
            .await
            .map_err(|e| anyhow!("commit: {e}"))?;
    }
    let after = usage(&mut conn, &keys).await?[2];
    let stream_after = stream_usage(&mut conn, &keys.events).await?;
    let r = args.reservations.max(1) as f64;
    Ok(MemoryReport {
        accounts: args.accounts.max(1),
        bytes_per_idle_account: total as f64 / n,
        account_record_bytes: record as f64 / n,
        grants_hash_bytes: grants as f64 / n,
        reservations: args.reservations.max(1),
        bytes_per_resolved_reservation: (after - before) as f64 / r,
        stream_bytes_per_entry: (stream_after.0.saturating_sub(stream_before.0)) as f64
            / (stream_after.1.saturating_sub(stream_before.1)).max(1) as f64,
    })
}

async fn create(store: &RedisStore, account: &str) -> Result<()> {
    store
        .create_account(requests::account(account))
        .await
        .map_err(|e| anyhow!("create account: {e}"))?;
    store
        .create_grant(requests::prepaid(
            account,
            "prepaid-2026",
            1_000_000_000_000,
            10_000,
        ))
        .await
        .map_err(|e| anyhow!("create grant: {e}"))?;
    Ok(())
}

/// `MEMORY USAGE` (exact) of the account's record, grants, reservations, expiry index, policies,
/// usage counters and closed grants, in that order (0 for a key that does not exist).
async fn usage(conn: &mut ConnectionManager, keys: &AccountKeys) -> Result<[u64; 7]> {
    let mut pipe = redis::pipe();
    for key in keys.own() {
        pipe.cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0);
    }
    let sizes: Vec<Option<u64>> = pipe.query_async(conn).await?;
    let mut out = [0u64; 7];
    for (o, s) in out.iter_mut().zip(sizes) {
        *o = s.unwrap_or(0);
    }
    Ok(out)
}

/// (bytes, entries) of a stream.
async fn stream_usage(conn: &mut ConnectionManager, key: &str) -> Result<(u64, u64)> {
    let (bytes, len): (Option<u64>, u64) = redis::pipe()
        .cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .cmd("XLEN")
        .arg(key)
        .query_async(conn)
        .await?;
    Ok((bytes.unwrap_or(0), len))
}
