//! The reconciler: reads every shard stream with one consumer group, books each entry in the
//! ledger ([`super::apply`]) and acknowledges it only after the transaction committed.
//!
//! - At least once: an entry a reconciler read and did not acknowledge (it crashed, Postgres was
//!   down) stays pending; after `claim_idle` any replica takes it over with XAUTOCLAIM. Booking is
//!   idempotent per event id, so a second delivery books nothing.
//! - An entry that keeps failing goes to the dead letters after `max_deliveries` deliveries.
//! - Several replicas can run at once: the group hands each entry to one of them.
//! - Bounded memory: one batch of at most `batch_size` entries at a time; while Postgres is down
//!   the same batch is retried and nothing more is read.
//! - Trimming: each stream is trimmed below its oldest entry not yet acknowledged (or not yet
//!   delivered), so no entry leaves Redis before the ledger holds it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamId, StreamPendingCountReply};
use redis::Value;
use tokio::sync::watch;

use super::apply::{apply, Delivered, Outcome};
use super::streams::parse_autoclaim;
pub use super::streams::{ensure_groups, stream_status, unbooked_seq, StreamStatus, GROUP};
use super::{drift, is_transient, Ledger};
use crate::store::redis::events_key;
use crate::store::redis::stream::Entry;

pub const EVENTS_APPLIED: &str = "creditd_ledger_events_applied_total";
pub const ENTRIES_APPLIED: &str = "creditd_ledger_entries_applied_total";
pub const DUPLICATES: &str = "creditd_ledger_duplicate_entries_total";
pub const BATCH_DURATION: &str = "creditd_ledger_batch_duration_seconds";
pub const DEAD_LETTERS: &str = "creditd_ledger_dead_letters_total";
pub const CONFLICTS: &str = "creditd_ledger_conflicts_total";
pub const ERRORS: &str = "creditd_ledger_errors_total";
pub const STREAM_LENGTH: &str = "creditd_stream_length";
pub const STREAM_PENDING: &str = "creditd_stream_pending";
pub const STREAM_UNDELIVERED: &str = "creditd_stream_undelivered";
pub const STREAM_OLDEST_AGE: &str = "creditd_stream_oldest_unacked_age_seconds";
pub const DRIFTING_ACCOUNTS: &str = "creditd_ledger_drifting_accounts";

/// Fault injection for the crash tests: when this variable is set, the process exits right
/// after its first Postgres commit, before acknowledging anything.
pub const CRASH_BEFORE_ACK_ENV: &str = "CREDITD_FAULT_CRASH_BEFORE_ACK";

#[derive(Debug, Clone)]
pub struct Config {
    pub redis_url: String,
    pub shards: u32,
    /// This replica's name in the group (unique per process).
    pub consumer: String,
    /// Most entries booked per transaction.
    pub batch_size: usize,
    /// How long one read waits for new entries.
    pub block: Duration,
    /// How long an entry must stay unacknowledged before another replica takes it over.
    pub claim_idle: Duration,
    /// Deliveries after which an entry that cannot be booked goes to the dead letters.
    pub max_deliveries: u64,
    /// Transactions booking one batch at once (each takes a share of the shards).
    pub parallelism: usize,
    /// How often streams are trimmed and their gauges refreshed.
    pub maintenance_interval: Duration,
    /// How often every account is checked for drift (None: never).
    pub drift_interval: Option<Duration>,
    /// How long a consumer with nothing pending may stay silent before it is removed from the
    /// group (replicas that stopped or died leave their names behind).
    pub consumer_retention: Duration,
}

impl Config {
    pub fn new(redis_url: &str, shards: u32) -> Self {
        Config {
            redis_url: redis_url.to_string(),
            shards,
            consumer: default_consumer_name(),
            batch_size: 2000,
            block: Duration::from_millis(500),
            claim_idle: Duration::from_secs(30),
            max_deliveries: 5,
            parallelism: 2,
            maintenance_interval: Duration::from_secs(1),
            drift_interval: Some(Duration::from_secs(300)),
            consumer_retention: Duration::from_secs(3600),
        }
    }
}

/// `<host>-<pid>-<random>`: unique, and readable in XINFO CONSUMERS.
pub fn default_consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "creditd".into());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

pub struct Reconciler {
    cfg: Config,
    ledger: Ledger,
    /// For the blocking reads only (a blocked read holds its connection).
    reader: ConnectionManager,
    /// For acknowledgements, claims, trimming and gauges.
    conn: ConnectionManager,
    streams: Vec<String>,
    last_cleanup: Option<Instant>,
}

/// What one pass did, for tests and logs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub entries: u64,
    pub events: u64,
    pub duplicates: u64,
    pub dead_letters: u64,
}

impl Totals {
    fn add(&mut self, out: &Outcome) {
        self.entries += out.entries_applied;
        self.events += out.events_applied;
        self.duplicates += out.duplicates;
        self.dead_letters += out.dead_letters;
    }
}

impl Reconciler {
    pub async fn new(cfg: Config, ledger: Ledger) -> Result<Self> {
        let client = redis::Client::open(cfg.redis_url.as_str()).context("invalid Redis URL")?;
        let manager = |timeout: Duration| {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Duration::from_secs(2))
                .set_response_timeout(timeout)
                .set_number_of_retries(1)
        };
        let reader = client
            .get_connection_manager_with_config(manager(cfg.block + Duration::from_secs(5)))
            .await
            .context("connecting to Redis")?;
        let conn = client
            .get_connection_manager_with_config(manager(Duration::from_secs(5)))
            .await
            .context("connecting to Redis")?;
        let streams = (0..cfg.shards).map(events_key).collect();
        let r = Reconciler {
            cfg,
            ledger,
            reader,
            conn,
            streams,
            last_cleanup: None,
        };
        r.ensure_groups().await?;
        r.check_schema().await?;
        Ok(r)
    }

    /// Refuses to start on a database without the ledger's tables (a Postgres that is down is
    /// fine: the reconciler waits for it).
    async fn check_schema(&self) -> Result<()> {
        let Ok(client) = self.ledger.client().await else {
            tracing::warn!("the ledger database is unreachable; booking starts when it is back");
            return Ok(());
        };
        match client
            .execute("SELECT 1 FROM ledger_heads LIMIT 0", &[])
            .await
        {
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                anyhow::bail!("the ledger schema is missing: run `creditd migrate` first")
            }
            _ => Ok(()),
        }
    }

    /// Creates the consumer group on every stream (from the first entry), once.
    pub async fn ensure_groups(&self) -> Result<()> {
        ensure_groups(&mut self.conn.clone(), self.cfg.shards).await
    }

    /// Runs until `stop` turns true: read, book, acknowledge; take over idle entries; trim.
    pub async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        tracing::info!(consumer = %self.cfg.consumer, shards = self.cfg.shards, "reconciler started");
        let mut last_maintenance = Instant::now() - self.cfg.maintenance_interval;
        let mut last_drift = Instant::now();
        let mut backoff = Duration::from_millis(100);
        // The batch being booked while the next one is read (at most one: memory stays bounded).
        let mut inflight: Option<InFlight> = None;
        while !*stop.borrow() {
            let view = stop.clone();
            let step = async {
                if last_maintenance.elapsed() >= self.cfg.maintenance_interval {
                    if let Some(b) = inflight.take() {
                        self.finish_booking(b).await?;
                    }
                    self.claim_idle(&view).await?;
                    self.maintain().await?;
                    last_maintenance = Instant::now();
                }
                if let Some(every) = self.cfg.drift_interval {
                    if last_drift.elapsed() >= every {
                        last_drift = Instant::now();
                        self.refresh_drift_gauge().await;
                    }
                }
                let batch = if inflight.is_some() {
                    self.read_new_nonblocking().await?
                } else {
                    self.read_new().await?
                };
                if let Some(b) = inflight.take() {
                    self.finish_booking(b).await?;
                }
                if !batch.is_empty() {
                    inflight = Some(self.start_booking(batch, &view));
                }
                anyhow::Ok(())
            };
            tokio::select! {
                r = step => match r {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        metrics::counter!(ERRORS, "kind" => "redis").increment(1);
                        tracing::warn!("reconciler: {e:#}; retrying in {backoff:?}");
                        if format!("{e:#}").contains("NOGROUP") {
                            // Redis lost the streams (flushed, or a new Redis): start over.
                            let _ = self.ensure_groups().await;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                },
                _ = stop.changed() => {}
            }
        }
        if let Some(b) = inflight.take() {
            if let Err(e) = self.finish_booking(b).await {
                tracing::warn!(
                    "the last batch was not acknowledged ({e:#}); it will be delivered again"
                );
            }
        }
        tracing::info!("reconciler stopped");
        Ok(())
    }

    /// Reads and books until no stream has anything new or pending (for tests and `--once`),
    /// reading the next batch while the previous one is booked.
    pub async fn drain(&mut self) -> Result<Totals> {
        let (_tx, stop) = watch::channel(false);
        let mut totals = Totals::default();
        let mut inflight: Option<InFlight> = None;
        loop {
            if inflight.is_none() {
                let claimed = self.claim_idle(&stop).await?;
                totals.add(&claimed);
            }
            let batch = self.read_new_nonblocking().await?;
            if let Some(b) = inflight.take() {
                totals.add(&self.finish_booking(b).await?);
            }
            if batch.is_empty() {
                self.maintain().await?;
                return Ok(totals);
            }
            inflight = Some(self.start_booking(batch, &stop));
        }
    }

    async fn read_new(&mut self) -> Result<Vec<Delivered>> {
        self.read(Some(self.cfg.block)).await
    }

    async fn read_new_nonblocking(&mut self) -> Result<Vec<Delivered>> {
        self.read(None).await
    }

    async fn read(&mut self, block: Option<Duration>) -> Result<Vec<Delivered>> {
        let per_stream = self.cfg.batch_size.div_ceil(self.streams.len()).max(1);
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.cfg.consumer)
            .arg("COUNT")
            .arg(per_stream);
        if let Some(b) = block {
            cmd.arg("BLOCK").arg(b.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.streams);
        for _ in &self.streams {
            cmd.arg(">");
        }
        let reply: Option<redis::streams::StreamReadReply> = cmd
            .query_async(&mut self.reader)
            .await
            .context("XREADGROUP")?;
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for id in &key.ids {
                out.push(delivered(&key.key, id, 1));
            }
        }
        Ok(out)
    }

    /// Takes over entries left unacknowledged for `claim_idle` (by a replica that died, or by a
    /// failed attempt of this one) and books them; dead-letters those delivered too often.
    async fn claim_idle(&mut self, stop: &watch::Receiver<bool>) -> Result<Outcome> {
        let mut total = Outcome::default();
        for key in self.streams.clone() {
            let mut start = "0-0".to_string();
            loop {
                let reply: Value = redis::cmd("XAUTOCLAIM")
                    .arg(&key)
                    .arg(GROUP)
                    .arg(&self.cfg.consumer)
                    .arg(self.cfg.claim_idle.as_millis() as u64)
                    .arg(&start)
                    .arg("COUNT")
                    .arg(self.cfg.batch_size)
                    .query_async(&mut self.conn)
                    .await
                    .context("XAUTOCLAIM")?;
                let (next, ids) = parse_autoclaim(reply)?;
                if !ids.is_empty() {
                    let counts = self.delivery_counts(&key, &ids).await?;
                    let batch = ids
                        .iter()
                        .map(|id| delivered(&key, id, counts.get(&id.id).copied().unwrap_or(1)))
                        .collect();
                    tracing::info!(stream = %key, entries = ids.len(), "took over idle entries");
                    merge(&mut total, self.book(batch, stop).await?);
                }
                if next == "0-0" || ids.is_empty() {
                    break;
                }
                start = next;
            }
        }
        Ok(total)
    }

    async fn delivery_counts(
        &mut self,
        key: &str,
        ids: &[StreamId],
    ) -> Result<std::collections::HashMap<String, u64>> {
        let (first, last) = (&ids[0].id, &ids[ids.len() - 1].id);
        let reply: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(key)
            .arg(GROUP)
            .arg(first)
            .arg(last)
            .arg(ids.len() * 2)
            .query_async(&mut self.conn)
            .await
            .context("XPENDING")?;
        Ok(reply
            .ids
            .into_iter()
            .map(|p| (p.id, p.times_delivered as u64))
            .collect())
    }

    /// Books a batch, retrying while Postgres is unreachable; then acknowledges. A batch that
    /// fails for a reason of its own is booked entry by entry, so one bad entry holds up nothing.
    /// Books a batch, its shards split over `parallelism` transactions that run at once (an
    /// account lives on one shard, so the transactions never touch the same rows); then
    /// acknowledges what was booked.
    async fn book(
        &mut self,
        batch: Vec<Delivered>,
        stop: &watch::Receiver<bool>,
    ) -> Result<Outcome> {
        if batch.is_empty() {
            return Ok(Outcome::default());
        }
        let inflight = self.start_booking(batch, stop);
        self.finish_booking(inflight).await
    }

    /// Starts booking a batch in a task of its own (decoding and Postgres work go on while the
    /// caller reads the next batch).
    fn start_booking(&self, batch: Vec<Delivered>, stop: &watch::Receiver<bool>) -> InFlight {
        let started = Instant::now();
        let k = self.cfg.parallelism.max(1);
        let mut groups: Vec<Vec<Delivered>> = vec![Vec::new(); k];
        for d in batch {
            let shard = self
                .streams
                .iter()
                .position(|s| *s == d.stream)
                .unwrap_or(0);
            groups[shard % k].push(d);
        }
        let (ledger, max, stop) = (self.ledger.clone(), self.cfg.max_deliveries, stop.clone());
        let task = tokio::spawn(async move {
            let results = futures::future::join_all(
                groups
                    .iter()
                    .filter(|g| !g.is_empty())
                    .map(|g| book_group(&ledger, g, max, &stop)),
            )
            .await;
            let mut out = Outcome::default();
            let mut failure = None;
            for r in results {
                match r {
                    Ok(o) => merge(&mut out, o),
                    Err(e) => failure = Some(e),
                }
            }
            (out, failure)
        });
        InFlight { task, started }
    }

    /// Waits for a booking to commit, then acknowledges what it booked.
    async fn finish_booking(&mut self, inflight: InFlight) -> Result<Outcome> {
        let (out, failure) = inflight.task.await.context("the booking task failed")?;
        let started = inflight.started;
        if std::env::var_os(CRASH_BEFORE_ACK_ENV).is_some() && out.entries_applied > 0 {
            eprintln!("{CRASH_BEFORE_ACK_ENV}: exiting between the commit and the acknowledgement");
            std::process::exit(86);
        }
        self.ack(&out.ack).await?;
        metrics::histogram!(BATCH_DURATION).record(started.elapsed().as_secs_f64());
        metrics::counter!(EVENTS_APPLIED).increment(out.events_applied);
        metrics::counter!(ENTRIES_APPLIED).increment(out.entries_applied);
        metrics::counter!(DUPLICATES).increment(out.duplicates);
        metrics::counter!(DEAD_LETTERS).increment(out.dead_letters);
        metrics::counter!(CONFLICTS).increment(out.conflicts.len() as u64);
        for account in &out.conflicts {
            tracing::error!(account = %account, "the stream and the ledger disagree on the account's history: run `creditd check` and `creditd rebuild --account {account}`");
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    async fn ack(&mut self, ack: &[(String, String)]) -> Result<()> {
        let mut pipe = redis::pipe();
        for key in &self.streams {
            let ids: Vec<&str> = ack
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, id)| id.as_str())
                .collect();
            if !ids.is_empty() {
                pipe.cmd("XACK").arg(key).arg(GROUP).arg(ids).ignore();
            }
        }
        pipe.query_async::<()>(&mut self.conn)
            .await
            .context("XACK")?;
        Ok(())
    }

    /// Trims every stream below its oldest unacknowledged (or undelivered) entry and refreshes the
    /// stream gauges.
    async fn maintain(&mut self) -> Result<()> {
        for (shard, key) in self.streams.clone().iter().enumerate() {
            let shard = shard.to_string();
            let status = stream_status(&mut self.conn, key).await?;
            if let Some(min) = &status.keep_from {
                let _: i64 = redis::cmd("XTRIM")
                    .arg(key)
                    .arg("MINID")
                    .arg(min)
                    .query_async(&mut self.conn)
                    .await
                    .context("XTRIM")?;
            }
            metrics::gauge!(STREAM_LENGTH, "shard" => shard.clone()).set(status.length as f64);
            metrics::gauge!(STREAM_PENDING, "shard" => shard.clone()).set(status.pending as f64);
            metrics::gauge!(STREAM_UNDELIVERED, "shard" => shard.clone())
                .set(status.undelivered as f64);
            metrics::gauge!(STREAM_OLDEST_AGE, "shard" => shard).set(status.oldest_age_seconds);
        }
        if self
            .last_cleanup
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.last_cleanup = Some(Instant::now());
            self.forget_idle_consumers().await?;
        }
        Ok(())
    }

    /// Removes consumers that hold nothing and were silent for `consumer_retention`.
    async fn forget_idle_consumers(&mut self) -> Result<()> {
        for key in self.streams.clone() {
            let info: redis::RedisResult<redis::streams::StreamInfoConsumersReply> =
                redis::cmd("XINFO")
                    .arg("CONSUMERS")
                    .arg(&key)
                    .arg(GROUP)
                    .query_async(&mut self.conn)
                    .await;
            let Ok(info) = info else { continue };
            for c in info.consumers {
                if c.pending == 0
                    && c.idle as u128 >= self.cfg.consumer_retention.as_millis()
                    && c.name != self.cfg.consumer
                {
                    let _: i64 = redis::cmd("XGROUP")
                        .arg("DELCONSUMER")
                        .arg(&key)
                        .arg(GROUP)
                        .arg(&c.name)
                        .query_async(&mut self.conn)
                        .await
                        .context("XGROUP DELCONSUMER")?;
                    tracing::info!(stream = %key, consumer = %c.name, "removed an idle consumer");
                }
            }
        }
        Ok(())
    }

    async fn refresh_drift_gauge(&self) {
        match drift::check(&self.ledger, &self.cfg.redis_url, self.cfg.shards).await {
            Ok(report) => metrics::gauge!(DRIFTING_ACCOUNTS).set(report.drifting().count() as f64),
            Err(e) => tracing::warn!("drift check failed: {e:#}"),
        }
    }
}

/// Books one group of entries in one transaction, retrying while Postgres is unreachable. A group
/// refused for a reason of its own is booked entry by entry, so one bad entry holds up nothing.
/// Acknowledges nothing.
async fn book_group(
    ledger: &Ledger,
    group: &[Delivered],
    max_deliveries: u64,
    stop: &watch::Receiver<bool>,
) -> Result<Outcome> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match apply(ledger, group, max_deliveries).await {
            Ok(out) => return Ok(out),
            Err(e) if is_transient(&e) => {
                metrics::counter!(ERRORS, "kind" => "postgres").increment(1);
                if *stop.borrow() {
                    // Leave the entries pending: another replica, or the next start, books them.
                    return Ok(Outcome::default());
                }
                tracing::warn!("ledger unavailable ({e:#}); retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) if group.len() > 1 => {
                tracing::warn!("batch refused ({e:#}); booking its entries one by one");
                let mut total = Outcome::default();
                for one in group.chunks(1) {
                    match Box::pin(book_group(ledger, one, max_deliveries, stop)).await {
                        Ok(o) => merge(&mut total, o),
                        Err(e) => {
                            metrics::counter!(ERRORS, "kind" => "entry").increment(1);
                            tracing::warn!(id = %one[0].id, "entry left pending: {e:#}");
                        }
                    }
                }
                return Ok(total);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A batch being booked in its own task.
struct InFlight {
    task: tokio::task::JoinHandle<(Outcome, Option<anyhow::Error>)>,
    started: Instant,
}

fn merge(total: &mut Outcome, o: Outcome) {
    total.ack.extend(o.ack);
    total.entries_applied += o.entries_applied;
    total.events_applied += o.events_applied;
    total.duplicates += o.duplicates;
    total.dead_letters += o.dead_letters;
    total.conflicts.extend(o.conflicts);
    total.left_pending += o.left_pending;
}

fn delivered(stream: &str, id: &StreamId, deliveries: u64) -> Delivered {
    Delivered {
        stream: stream.to_string(),
        id: id.id.clone(),
        deliveries,
        entry: Entry::decode(id),
    }
}
