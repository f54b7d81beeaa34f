//! The ledger's commands: `creditd migrate`, `reconcile`, `check` and `rebuild`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::drift::check_accounts;
use super::rebuild::{ledger_account_ids, rebuild_account, Options};
use super::reconciler::{self, Reconciler};
use super::Ledger;

#[derive(Clone, clap::Args)]
pub struct DatabaseArgs {
    /// Postgres URL of the ledger, e.g. postgres://creditd:password@host:5432/creditd.
    #[arg(long, env = "CREDITD_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

#[derive(Clone, clap::Args)]
pub struct RedisArgs {
    /// Redis URL (the same as `creditd serve`'s).
    #[arg(long, env = "CREDITD_REDIS_URL", hide_env_values = true)]
    pub redis_url: String,
    /// Number of virtual shards (the same as `creditd serve`'s).
    #[arg(long, env = "CREDITD_SHARDS", default_value_t = 16)]
    pub shards: u32,
}

#[derive(Clone, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
}

#[derive(Clone, clap::Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub tuning: ReconcileTuning,
    /// HTTP listen address for GET /metrics (Prometheus); empty: none.
    #[arg(
        long,
        env = "CREDITD_RECONCILE_HTTP_LISTEN",
        default_value = "127.0.0.1:9465"
    )]
    pub http_listen: String,
    /// Book what the streams hold, then exit (instead of running until SIGTERM).
    #[arg(long)]
    pub once: bool,
}

/// Reconciler settings shared by `creditd reconcile` and `creditd serve --reconcile`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Reconciler")]
pub struct ReconcileTuning {
    /// Most stream entries read at once (booked in --parallelism transactions).
    #[arg(long, env = "CREDITD_RECONCILE_BATCH", default_value_t = 2000)]
    pub batch_size: usize,
    /// Milliseconds an entry stays unacknowledged before another reconciler takes it over.
    #[arg(
        long,
        env = "CREDITD_RECONCILE_CLAIM_IDLE_MS",
        default_value_t = 30_000
    )]
    pub claim_idle_ms: u64,
    /// Deliveries after which an entry that cannot be booked goes to the dead letters.
    #[arg(long, env = "CREDITD_RECONCILE_MAX_DELIVERIES", default_value_t = 5)]
    pub max_deliveries: u64,
    /// Transactions booking one batch at once, each for a share of the shards (Postgres uses a
    /// core per transaction).
    #[arg(long, env = "CREDITD_RECONCILE_PARALLELISM", default_value_t = 2)]
    pub parallelism: usize,
    /// Seconds between drift checks of every account (the drifting-accounts gauge); 0: never.
    #[arg(long, env = "CREDITD_DRIFT_CHECK_SECONDS", default_value_t = 300)]
    pub drift_check_seconds: u64,
    /// This replica's consumer name in the group (default: host, pid and a random suffix).
    #[arg(long, env = "CREDITD_RECONCILE_CONSUMER")]
    pub consumer: Option<String>,
}

impl Default for ReconcileTuning {
    fn default() -> Self {
        ReconcileTuning {
            batch_size: 2000,
            claim_idle_ms: 30_000,
            max_deliveries: 5,
            parallelism: 2,
            drift_check_seconds: 300,
            consumer: None,
        }
    }
}

impl ReconcileTuning {
    pub fn config(&self, redis_url: &str, shards: u32) -> reconciler::Config {
        let mut cfg = reconciler::Config::new(redis_url, shards);
        cfg.batch_size = self.batch_size.max(1);
        cfg.claim_idle = Duration::from_millis(self.claim_idle_ms);
        cfg.max_deliveries = self.max_deliveries.max(1);
        cfg.parallelism = self.parallelism.max(1);
        cfg.drift_interval =
            (self.drift_check_seconds > 0).then(|| Duration::from_secs(self.drift_check_seconds));
        if let Some(c) = &self.consumer {
            cfg.consumer = c.clone();
        }
        cfg
    }
}

#[derive(Clone, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Check only this account (repeatable).
    #[arg(long = "account")]
    pub accounts: Vec<String>,
    /// Seconds to wait for accounts whose events the ledger has not booked yet.
    #[arg(long, default_value_t = 10)]
    pub settle_seconds: u64,
    /// List every account, not only the drifting and lagging ones.
    #[arg(long)]
    pub verbose: bool,
    /// Skip the ledger's own invariants (balanced postings, balances equal to their postings,
    /// gap-free events), which scan the whole ledger.
    #[arg(long)]
    pub skip_invariants: bool,
}

#[derive(Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["accounts", "all"])))]
pub struct RebuildArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// The account to rebuild (repeatable).
    #[arg(long = "account")]
    pub accounts: Vec<String>,
    /// Rebuild every account the ledger holds.
    #[arg(long)]
    pub all: bool,
    /// Seconds to wait for the ledger to book what Redis holds beyond it.
    #[arg(long, default_value_t = 30)]
    pub wait_seconds: u64,
    /// Rebuild even when the ledger is still behind Redis (that difference is dropped), and take
    /// over the mark of a rebuild that died.
    #[arg(long)]
    pub force: bool,
}

#[derive(Clone, clap::Args)]
pub struct DeadLettersArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Only this account's.
    #[arg(long)]
    pub account: Option<String>,
    /// Most to list, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// Lists the stream entries the reconciler set aside; exit 1 when there are any.
pub async fn dead_letters(args: DeadLettersArgs) -> Result<ExitCode> {
    let ledger = Ledger::connect(&args.db.database_url, 1)?;
    let client = ledger.client().await?;
    let rows = client
        .query(
            "SELECT stream, entry_id, account_id, seq, reason, deliveries, created_at \
             FROM ledger_dead_letters WHERE $1::text IS NULL OR account_id = $1 \
             ORDER BY created_at DESC, stream, entry_id LIMIT $2",
            &[&args.account, &args.limit.clamp(1, 10_000)],
        )
        .await
        .context("reading the dead letters")?;
    for r in &rows {
        let at: std::time::SystemTime = r.get(6);
        let at = prost_types::Timestamp::from(at).to_string();
        let (stream, entry, account, seq, reason, deliveries): (
            String,
            String,
            String,
            i64,
            String,
            i32,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        if args.json {
            let line = serde_json::json!({
                "stream": stream, "entry_id": entry, "account_id": account, "seq": seq,
                "reason": reason, "deliveries": deliveries, "at": at,
            });
            println!("{line}");
        } else {
            println!(
                "{at}  {stream} {entry}  {account} #{seq}  ({deliveries} deliveries)  {reason}"
            );
        }
    }
    if !args.json {
        println!("{} dead letters", rows.len());
    }
    Ok(if rows.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub async fn migrate(args: MigrateArgs) -> Result<()> {
    let ledger = Ledger::connect(&args.db.database_url, 1)?;
    let applied = ledger.migrate().await?;
    if applied.is_empty() {
        println!("ledger schema up to date");
    } else {
        for m in applied {
            println!("applied {m}");
        }
    }
    Ok(())
}

pub async fn reconcile(args: ReconcileArgs) -> Result<()> {
    let ledger = Ledger::connect(&args.db.database_url, args.tuning.parallelism.max(1) + 1)?;
    let cfg = args.tuning.config(&args.redis.redis_url, args.redis.shards);
    let mut r = Reconciler::new(cfg, ledger).await?;
    if args.once {
        let t = r.drain().await?;
        println!(
            "booked {} entries ({} events), {} already booked, {} dead letters",
            t.entries, t.events, t.duplicates, t.dead_letters
        );
        return Ok(());
    }
    let (tx, rx) = watch::channel(false);
    if !args.http_listen.is_empty() {
        let addr: SocketAddr = args.http_listen.parse().context("invalid --http-listen")?;
        crate::telemetry::metrics::handle();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(crate::telemetry::metrics::render_off_thread),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        tokio::spawn(crate::telemetry::metrics::keep_up(rx.clone()));
    }
    let mut signals = crate::server::Signals::install()?;
    tokio::spawn(async move {
        let signal = signals.next().await;
        tracing::info!("{signal} received: stopping after the current batch");
        let _ = tx.send(true);
    });
    r.run(rx).await
}

pub async fn check(args: CheckArgs) -> Result<ExitCode> {
    let ledger = Ledger::connect(&args.db.database_url, 2)?;
    let only = (!args.accounts.is_empty()).then_some(args.accounts.as_slice());
    let report = check_accounts(
        &ledger,
        &args.redis.redis_url,
        args.redis.shards,
        only,
        Duration::from_secs(args.settle_seconds),
    )
    .await?;
    let mut drifting = 0;
    for (account, status) in &report.accounts {
        if status.is_drift() {
            drifting += 1;
        }
        if args.verbose || *status != super::drift::Status::InSync {
            println!("{account}: {status}");
        }
    }
    println!(
        "{} accounts checked, {drifting} drifting",
        report.accounts.len()
    );
    let mut broken = Vec::new();
    if !args.skip_invariants {
        broken = super::drift::ledger_invariants(&ledger).await?;
        for b in &broken {
            println!("LEDGER: {b}");
        }
        if broken.is_empty() {
            println!("ledger invariants hold");
        }
    }
    Ok(if drifting == 0 && broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub async fn rebuild(args: RebuildArgs) -> Result<ExitCode> {
    let ledger = Ledger::connect(&args.db.database_url, 2)?;
    let client = redis::Client::open(args.redis.redis_url.as_str()).context("invalid Redis URL")?;
    let mut conn = redis::aio::ConnectionManager::new(client)
        .await
        .context("connecting to Redis")?;
    let accounts = if args.all {
        ledger_account_ids(&ledger).await?
    } else {
        args.accounts.clone()
    };
    let opts = Options {
        wait: Duration::from_secs(args.wait_seconds),
        force: args.force,
    };
    let mut failed = 0;
    for account in &accounts {
        match rebuild_account(&ledger, &mut conn, args.redis.shards, account, &opts).await {
            Ok(seq) => println!("{account}: rebuilt at #{seq}"),
            Err(e) => {
                failed += 1;
                eprintln!("{account}: not rebuilt: {e:#}");
            }
        }
    }
    println!("{} rebuilt, {failed} failed", accounts.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
