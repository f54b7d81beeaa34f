//! `creditd bench`: load on a running creditd over gRPC, and (with `--baseline-redis`) the same
//! load straight on the same Redis through [`RedisStore`], in alternating rounds (server, then
//! baseline, `--rounds` times), so that the report can say what the server adds to the scripts it
//! runs even while the machine's speed drifts.
//!
//! Rooms: [`args`] (the flags), [`scenario`] (what one op is, the bench accounts and their
//! conservation check), [`load`] (closed and open loops) and its clock [`pacer`], [`machine`]
//! (what a wake-up costs on this machine), [`redis_probe`] (what Redis counted),
//! [`report`] (JSON and text), [`requests`] (the store calls every bench makes), [`memory`]
//! (`creditd bench-memory`: bytes per account and per reservation), [`ledger`]
//! (`creditd bench-ledger`: the reconciler against the hot path).

pub mod args;
pub mod ledger;
pub mod load;
pub mod machine;
pub mod memory;
pub mod pacer;
pub mod redis_probe;
pub mod report;
pub mod requests;
pub mod scenario;
pub mod transport;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub use args::{BenchArgs, Scenario};
use redis_probe::RedisProbe;
use report::{Phase, Report};
use scenario::{Backend, Driver};
use transport::Transport;

use crate::cli::secure::BearerAuth;
use crate::proto::credit_admin_client::CreditAdminClient;
use crate::proto::credits_client::CreditsClient;
use crate::store::redis::RedisStore;
use crate::store::ClockMode;

/// How long to wait for the TCP connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long any one call may take before it counts as a `DEADLINE_EXCEEDED`/`CANCELLED` error.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the bench and prints its report. Exit 0, or 1 when a credit was not conserved.
pub async fn run(args: BenchArgs) -> Result<ExitCode> {
    if !args.duration.is_finite()
        || args.duration <= 0.0
        || !args.warmup.is_finite()
        || args.warmup < 0.0
    {
        bail!("--duration must be a number above 0 and --warmup at least 0");
    }
    if args.rate.is_some_and(|r| !r.is_finite() || r <= 0.0) {
        bail!("--rate must be a number above 0");
    }
    if args.reserve_micros <= 0
        || args.commit_micros < 0
        || args.commit_micros > args.reserve_micros
    {
        bail!("--reserve-micros must be above 0 and --commit-micros between 0 and it");
    }
    if args.target.starts_with("https://") {
        bail!("creditd bench speaks plaintext HTTP/2 only for now: use an http:// --target");
    }
    let run_id = format!("bench-{:08x}", rand::random::<u32>());
    let duration = Duration::from_secs_f64(args.duration);

    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let mut probe = match &args.redis_url {
        Some(url) => match RedisProbe::connect(url).await {
            Ok(probe) => Some(probe),
            Err(e) => {
                eprintln!("creditd bench: no Redis figures: {e:#}");
                None
            }
        },
        None => None,
    };

    // Through the server.
    let server = prepare(grpc_backend(&args).await?, format!("{run_id}-s"), &args).await?;
    // Before the baseline connects: the connections the server holds, warmed up under load.
    let server_clients = match probe.as_mut() {
        Some(probe) => probe.other_clients().await.ok(),
        None => None,
    };

    // The same scripts, straight on Redis.
    let baseline = match (args.baseline_redis, args.redis_url.as_deref()) {
        (false, _) => None,
        (true, None) => bail!("--baseline-redis needs --redis-url"),
        (true, Some(url)) => {
            let mut store = RedisStore::new(url, args.shards, ClockMode::System)
                .await
                .map_err(|e| anyhow::anyhow!("--redis-url: {e}"))?;
            store
                .use_pool(args.baseline_pool_size)
                .map_err(|e| anyhow::anyhow!("--baseline-pool-size: {e}"))?;
            let backend = Backend::Redis(Box::new(store));
            Some(prepare(backend, format!("{run_id}-b"), &args).await?)
        }
    };

    // What waking a process costs on this machine, right before the load (see `machine`).
    let wake = tokio::task::spawn_blocking(|| machine::wake_round_trip(machine::ROUND_TRIPS))
        .await
        .map_err(std::io::Error::other)
        .and_then(|measured| measured)
        .map_err(|e| eprintln!("creditd bench: no wake-up round trip: {e}"))
        .ok();

    // The measured rounds, server then baseline in turn.
    let slice = duration / args.rounds;
    let mut server_total = Measured::default();
    let mut baseline_total = Measured::default();
    let mut round_ratios = Vec::new();
    for _ in 0..args.rounds {
        let s = measure(&server, &args, slice, probe.as_mut()).await;
        let server_rate = s.stats.ops_per_s();
        server_total.add(s);
        if let Some(baseline) = &baseline {
            let b = measure(baseline, &args, slice, probe.as_mut()).await;
            if b.stats.ops_per_s() > 0.0 {
                round_ratios.push(server_rate / b.stats.ops_per_s());
            }
            baseline_total.add(b);
        }
    }
    let server_phase = Phase::new(
        &server_total.stats,
        server.check_conservation().await?,
        server_total.redis_figures(server_clients),
    );
    let baseline_phase = match &baseline {
        Some(baseline) => Some(Phase::new(
            &baseline_total.stats,
            baseline.check_conservation().await?,
            baseline_total.redis_figures(None),
        )),
        None => None,
    };

    let report = build_report(&args, server_phase, baseline_phase, round_ratios, wake);
    if args.json {
        // The readable report goes to stderr, so that stdout is the JSON object alone.
        eprint!("{}", report.text());
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(if report.conserved() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A backend's driver with its accounts made, its outstanding holds taken and its warm-up done.
async fn prepare(backend: Backend, prefix: String, args: &BenchArgs) -> Result<Arc<Driver>> {
    let driver = Arc::new(
        Driver::new(
            backend,
            args.scenario,
            prefix,
            args.accounts,
            args.reserve_micros,
            args.commit_micros,
        )
        .with_grants(args.grants),
    );
    driver.setup().await?;
    make_holds(&driver, args).await?;
    warm_up(&driver, args).await;
    Ok(driver)
}

/// Load that is not counted, so that connections, scripts and caches are warm.
async fn warm_up(driver: &Arc<Driver>, args: &BenchArgs) {
    if args.warmup > 0.0 {
        let warmup = Duration::from_secs_f64(args.warmup);
        load::run(driver.clone(), args.concurrency, warmup, args.rate).await;
    }
}

/// What one backend's rounds measured, added up.
#[derive(Default)]
struct Measured {
    stats: load::Stats,
    /// Scripts Redis ran (and their time), and calls the bench made, during the rounds (with a
    /// probe).
    scripts: redis_probe::ScriptCounts,
    calls: u64,
    /// Whether Redis counted every round (else there are no Redis figures).
    counted: bool,
    rounds: u32,
}

impl Measured {
    fn add(&mut self, other: Measured) {
        self.stats.merge(other.stats);
        self.scripts = self.scripts + other.scripts;
        self.calls += other.calls;
        self.counted = other.counted && (self.rounds == 0 || self.counted);
        self.rounds += 1;
    }

    fn redis_figures(&self, clients: Option<u64>) -> Option<report::RedisFigures> {
        self.counted.then(|| report::RedisFigures {
            script_calls: self.scripts.calls,
            calls: self.calls,
            script_calls_per_call: if self.calls > 0 {
                self.scripts.calls as f64 / self.calls as f64
            } else {
                0.0
            },
            script_us_per_call: if self.scripts.calls > 0 {
                self.scripts.usec as f64 / self.scripts.calls as f64
            } else {
                0.0
            },
            clients,
        })
    }
}

/// One round of measured load; with a probe, the scripts Redis ran meanwhile.
async fn measure(
    driver: &Arc<Driver>,
    args: &BenchArgs,
    duration: Duration,
    probe: Option<&mut RedisProbe>,
) -> Measured {
    let Some(probe) = probe else {
        let stats = load::run(driver.clone(), args.concurrency, duration, args.rate).await;
        return Measured {
            stats,
            ..Measured::default()
        };
    };
    let before = probe.script_calls().await;
    let calls_before = driver.calls.load(Ordering::Relaxed);
    let stats = load::run(driver.clone(), args.concurrency, duration, args.rate).await;
    let calls = driver.calls.load(Ordering::Relaxed) - calls_before;
    let after = probe.script_calls().await;
    match (before, after) {
        (Ok(before), Ok(after)) => Measured {
            stats,
            scripts: after.since(before),
            calls,
            counted: true,
            rounds: 1,
        },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("creditd bench: no Redis figures: {e:#}");
            Measured {
                stats,
                ..Measured::default()
            }
        }
    }
}

async fn grpc_backend(args: &BenchArgs) -> Result<Backend> {
    let auth = BearerAuth::new(args.token.clone());
    let mut clients = Vec::new();
    let mut first = None;
    for _ in 0..args.channels.max(1) {
        let transport =
            Transport::connect(args.transport, &args.target, CONNECT_TIMEOUT, CALL_TIMEOUT)
                .await
                .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", args.target))?;
        first.get_or_insert_with(|| transport.clone());
        clients.push(CreditsClient::with_origin(
            tonic::service::interceptor::InterceptedService::new(transport, auth.clone()),
            origin(),
        ));
    }
    let admin = Box::new(CreditAdminClient::with_origin(
        tonic::service::interceptor::InterceptedService::new(
            first.expect("one channel at least"),
            auth,
        ),
        origin(),
    ));
    Ok(Backend::Grpc { clients, admin })
}

/// The scheme and authority of the bench's requests (HTTP/2's `:scheme` and `:authority`).
fn origin() -> http::Uri {
    http::Uri::from_static("http://localhost")
}

fn build_report(
    args: &BenchArgs,
    server: Phase,
    baseline: Option<Phase>,
    round_ratios: Vec<f64>,
    wake: Option<machine::WakeRoundTrip>,
) -> Report {
    let conserved =
        server.conservation.conserved && baseline.as_ref().is_none_or(|b| b.conservation.conserved);
    let ratio = baseline
        .as_ref()
        .filter(|b| b.ops_per_s > 0.0)
        .map(|b| server.ops_per_s / b.ops_per_s);
    Report {
        scenario: args.scenario.name(),
        mode: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        concurrency: args.concurrency,
        rate: args.rate,
        duration_s: args.duration,
        warmup_s: args.warmup,
        accounts: args.accounts.max(1),
        grants: args.grants.max(1),
        holds: args.holds,
        channels: args.channels.max(1),
        shards: args.shards,
        ops: server.ops,
        ops_per_s: server.ops_per_s,
        p50_us: server.p50_us,
        p90_us: server.p90_us,
        p99_us: server.p99_us,
        p999_us: server.p999_us,
        errors: server.errors,
        errors_by_status: server.errors_by_status.clone(),
        client_cpu_s: server.client_cpu_s,
        conserved,
        baseline_ops_per_s: baseline.as_ref().map(|b| b.ops_per_s),
        baseline_p50_us: baseline.as_ref().map(|b| b.p50_us),
        baseline_p90_us: baseline.as_ref().map(|b| b.p90_us),
        baseline_p99_us: baseline.as_ref().map(|b| b.p99_us),
        baseline_p999_us: baseline.as_ref().map(|b| b.p999_us),
        baseline_errors: baseline.as_ref().map(|b| b.errors),
        baseline_client_cpu_s: baseline.as_ref().map(|b| b.client_cpu_s),
        ratio,
        redis_scripts_per_rpc: server.redis.as_ref().map(|r| r.script_calls_per_call),
        redis_us_per_script: server.redis.as_ref().map(|r| r.script_us_per_call),
        redis_clients: server.redis.as_ref().and_then(|r| r.clients),
        rpc_p50_us: server.rpc_p50_us,
        rpc_p99_us: server.rpc_p99_us,
        baseline_rpc_p50_us: baseline.as_ref().map(|b| b.rpc_p50_us),
        baseline_rpc_p99_us: baseline.as_ref().map(|b| b.rpc_p99_us),
        rpc_overhead_p50_us: baseline
            .as_ref()
            .map(|b| server.rpc_p50_us as i64 - b.rpc_p50_us as i64),
        start_lag_p99_us: server.start_lag_p99_us,
        wake_rtt_p50_us: wake.map(|w| w.p50_us),
        wake_rtt_p99_us: wake.map(|w| w.p99_us),
        rounds: args.rounds,
        round_ratios,
        client_threads: args.client_threads.max(1),
        transport: args.transport,
        baseline_pool_size: args.baseline_pool_size,
        baseline_redis_scripts_per_call: baseline
            .as_ref()
            .and_then(|b| b.redis.as_ref())
            .map(|r| r.script_calls_per_call),
        server,
        baseline,
    }
}

/// Makes `--holds` outstanding holds through the driver's backend, `--concurrency` at a time.
async fn make_holds(driver: &Arc<Driver>, args: &BenchArgs) -> Result<()> {
    if args.holds == 0 {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (driver, next, total) = (driver.clone(), next.clone(), args.holds);
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<(), anyhow::Error>(());
                }
                driver.hold(n).await?;
            }
        }));
    }
    for t in tasks {
        t.await.context("a hold task failed")??;
    }
    eprintln!(
        "made {} outstanding holds in {:.1} s",
        args.holds,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
