//! `creditd bench`: load on a running creditd over gRPC, and (with `--baseline-redis`) the same
//! load straight on the same Redis through [`RedisStore`], one phase after the other, so that the
//! report can say what the server adds to the scripts it runs.
//!
//! Rooms: [`args`] (the flags), [`scenario`] (what one op is, the bench accounts and their
//! conservation check), [`load`] (closed and open loops), [`redis_probe`] (what Redis counted),
//! [`report`] (JSON and text), [`requests`] (the store calls every bench makes), [`memory`]
//! (`creditd bench-memory`: bytes per account and per reservation), [`ledger`]
//! (`creditd bench-ledger`: the reconciler against the hot path).

pub mod args;
pub mod ledger;
pub mod load;
pub mod memory;
pub mod redis_probe;
pub mod report;
pub mod requests;
pub mod scenario;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tonic::transport::Endpoint;

pub use args::{BenchArgs, Scenario};
use redis_probe::RedisProbe;
use report::{Phase, Report};
use scenario::{Backend, Driver};

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

    // Phase 1: through the server.
    let server = Arc::new(
        Driver::new(
            grpc_backend(&args).await?,
            args.scenario,
            format!("{run_id}-s"),
            args.accounts,
            args.reserve_micros,
            args.commit_micros,
        )
        .with_grants(args.grants),
    );
    server.setup().await?;
    make_holds(&server, &args).await?;
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
    let (stats, redis) = phase(&server, &args, duration, probe.as_mut()).await;
    let server_phase = Phase::new(&stats, server.check_conservation().await?, redis);

    // Phase 2: the same scripts, straight on Redis.
    let baseline_phase = if args.baseline_redis {
        let url = args
            .redis_url
            .as_deref()
            .context("--baseline-redis needs --redis-url")?;
        let store = RedisStore::new(url, args.shards, ClockMode::System)
            .await
            .map_err(|e| anyhow::anyhow!("--redis-url: {e}"))?;
        let baseline = Arc::new(
            Driver::new(
                Backend::Redis(Box::new(store)),
                args.scenario,
                format!("{run_id}-b"),
                args.accounts,
                args.reserve_micros,
                args.commit_micros,
            )
            .with_grants(args.grants),
        );
        baseline.setup().await?;
        make_holds(&baseline, &args).await?;
        let (stats, redis) = phase(&baseline, &args, duration, probe.as_mut()).await;
        Some(Phase::new(
            &stats,
            baseline.check_conservation().await?,
            redis,
        ))
    } else {
        None
    };

    let report = build_report(&args, server_phase, baseline_phase);
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

/// Warm-up (discarded), then the measured load; with a probe, what Redis counted meanwhile.
async fn phase(
    driver: &Arc<Driver>,
    args: &BenchArgs,
    duration: Duration,
    probe: Option<&mut RedisProbe>,
) -> (load::Stats, Option<report::RedisFigures>) {
    if args.warmup > 0.0 {
        let warmup = Duration::from_secs_f64(args.warmup);
        load::run(driver.clone(), args.concurrency, warmup, args.rate).await;
    }
    let Some(probe) = probe else {
        let stats = load::run(driver.clone(), args.concurrency, duration, args.rate).await;
        return (stats, None);
    };
    let before = probe.script_calls().await;
    let calls_before = driver.calls.load(Ordering::Relaxed);
    let stats = load::run(driver.clone(), args.concurrency, duration, args.rate).await;
    let calls = driver.calls.load(Ordering::Relaxed) - calls_before;
    let after = probe.script_calls().await;
    let clients = probe.other_clients().await;
    let figures = match (before, after, clients) {
        (Ok(before), Ok(after), Ok(clients)) => Some(report::RedisFigures {
            script_calls: after.saturating_sub(before),
            calls,
            script_calls_per_call: if calls > 0 {
                after.saturating_sub(before) as f64 / calls as f64
            } else {
                0.0
            },
            clients,
        }),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("creditd bench: no Redis figures: {e:#}");
            None
        }
    };
    (stats, figures)
}

async fn grpc_backend(args: &BenchArgs) -> Result<Backend> {
    let auth = BearerAuth::new(args.token.clone());
    let endpoint = Endpoint::from_shared(args.target.clone())
        .with_context(|| format!("invalid --target {:?}", args.target))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    let mut clients = Vec::new();
    let mut first = None;
    for _ in 0..args.channels.max(1) {
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", args.target))?;
        first.get_or_insert_with(|| channel.clone());
        clients.push(CreditsClient::with_interceptor(channel, auth.clone()));
    }
    let admin = Box::new(CreditAdminClient::with_interceptor(
        first.expect("one channel at least"),
        auth,
    ));
    Ok(Backend::Grpc { clients, admin })
}

fn build_report(args: &BenchArgs, server: Phase, baseline: Option<Phase>) -> Report {
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
        redis_clients: server.redis.as_ref().map(|r| r.clients),
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
