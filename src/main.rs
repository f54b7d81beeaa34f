//! The `creditd` binary: `creditd serve` runs the service; the other subcommands drive a running
//! server from the command line.

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: a call allocates and frees many small buffers
/// (HTTP/2 frames, protobuf, msgpack), and glibc's malloc was 14% of the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "creditd",
    version,
    about = "Exact, low-latency credit authorization for AI products"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC service (Credits, CreditAdmin, health, reflection) and the HTTP probes.
    Serve(creditd::config::ServeArgs),
    /// Apply the ledger's schema to Postgres (safe to run twice).
    Migrate(creditd::ledger::commands::MigrateArgs),
    /// Book the Redis event streams into the Postgres ledger (runs until SIGTERM).
    Reconcile(creditd::ledger::commands::ReconcileArgs),
    /// Compare every account in Redis with the ledger; exit 1 when any drifts.
    Check(creditd::ledger::commands::CheckArgs),
    /// Rebuild accounts in Redis from the ledger (each fails closed meanwhile).
    Rebuild(creditd::ledger::commands::RebuildArgs),
    /// List the stream entries the reconciler set aside (exit 1 when there are any).
    DeadLetters(creditd::ledger::commands::DeadLettersArgs),
    /// Benchmark: the reconciler's booking rate against the hot path's event rate, in one run.
    BenchLedger(creditd::bench::ledger::BenchLedgerArgs),
    /// Benchmark a running server (closed or open loop), optionally against the same scripts
    /// called straight on Redis (--baseline-redis); checks that every credit is conserved.
    Bench(creditd::bench::BenchArgs),
    /// Measure what creditd keeps in Redis: bytes per idle account and per resolved reservation.
    BenchMemory(creditd::bench::memory::BenchMemoryArgs),
    /// Hash a bearer token for the tokens file, or generate a new one (no server needed).
    Token(creditd::cli::TokenArgs),
    #[command(flatten)]
    Client(creditd::cli::ClientCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut runtime = match &cli.command {
        Command::Serve(args) => serving_runtime(args.worker_threads),
        Command::Bench(args) => {
            // A multi-thread runtime even for one thread: its LIFO slot sends each call the moment
            // a task makes it, which keeps Redis busiest in the baseline phase (a
            // current-thread bench batched its calls and lowered the baseline's rate at
            // concurrency 16 by a quarter: BENCHMARKS.md, session L).
            multi_thread(args.client_threads)
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all();
    match runtime.build() {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => {
            eprintln!("creditd: cannot start the runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The server's runtime. With one serving thread (the default) it is a current-thread runtime:
/// tasks run in the order they were woken, so the script calls that become ready in one turn
/// leave in one write to Redis, and the answers in one write to the caller. A multi-thread
/// runtime's "LIFO slot" runs a woken task next instead, so each script call and each answer
/// went out in its own write: two per call. Batching cut the server's CPU per call by a quarter
/// to two fifths under concurrency; in a closed loop of 16 calls Redis then waits for each
/// turn's batch (BENCHMARKS.md, session L).
fn serving_runtime(worker_threads: usize) -> tokio::runtime::Builder {
    if worker_threads <= 1 {
        return tokio::runtime::Builder::new_current_thread();
    }
    multi_thread(worker_threads)
}

/// A multi-thread runtime with `threads` workers (1 to 1024).
fn multi_thread(threads: usize) -> tokio::runtime::Builder {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.worker_threads(threads.clamp(1, 1024));
    runtime
}

async fn run(cli: Cli) -> std::process::ExitCode {
    match cli.command {
        Command::Serve(args) => {
            creditd::telemetry::init_tracing();
            match creditd::server::run(args).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("creditd stopped: {e:#}");
                    eprintln!("creditd: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Migrate(args) => report(creditd::ledger::commands::migrate(args).await),
        Command::Reconcile(args) => {
            creditd::telemetry::init_tracing();
            report(creditd::ledger::commands::reconcile(args).await)
        }
        Command::Check(args) => exit_code(creditd::ledger::commands::check(args).await),
        Command::Rebuild(args) => {
            creditd::telemetry::init_tracing();
            exit_code(creditd::ledger::commands::rebuild(args).await)
        }
        Command::DeadLetters(args) => {
            exit_code(creditd::ledger::commands::dead_letters(args).await)
        }
        Command::BenchLedger(args) => {
            let json = args.json;
            report(
                creditd::bench::ledger::run(args)
                    .await
                    .map(|r| r.print(json)),
            )
        }
        Command::Bench(args) => exit_code(creditd::bench::run(args).await),
        Command::BenchMemory(args) => {
            let json = args.json;
            report(
                creditd::bench::memory::run(args)
                    .await
                    .map(|r| r.print(json)),
            )
        }
        Command::Token(args) => creditd::cli::token::run(args),
        Command::Client(cmd) => creditd::cli::run(cmd).await,
    }
}

fn report(result: anyhow::Result<()>) -> std::process::ExitCode {
    exit_code(result.map(|()| std::process::ExitCode::SUCCESS))
}

/// Errors print on stderr and exit 2 (1 is `check`'s "drift found").
fn exit_code(result: anyhow::Result<std::process::ExitCode>) -> std::process::ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("creditd: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::serving_runtime;
    use tokio::runtime::RuntimeFlavor;

    fn flavor(worker_threads: usize) -> RuntimeFlavor {
        let runtime = serving_runtime(worker_threads)
            .enable_all()
            .build()
            .unwrap();
        runtime.handle().runtime_flavor()
    }

    #[test]
    fn one_serving_thread_runs_tasks_in_the_order_they_were_woken() {
        assert_eq!(flavor(1), RuntimeFlavor::CurrentThread);
        let runtime = serving_runtime(1).enable_all().build().unwrap();
        let order = runtime.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            // "first" wakes the waiter while "second" is already queued: run in the order they
            // were woken, "second" comes before "woken"; a LIFO slot would run "woken" next.
            let (wake, woken) = tokio::sync::oneshot::channel::<()>();
            let t = tx.clone();
            let waiter = tokio::spawn(async move {
                woken.await.unwrap();
                t.send("woken").unwrap();
            });
            tokio::task::yield_now().await;
            let t = tx.clone();
            let first = tokio::spawn(async move {
                wake.send(()).unwrap();
                t.send("first").unwrap();
            });
            let t = tx.clone();
            let second = tokio::spawn(async move { t.send("second").unwrap() });
            for task in [waiter, first, second] {
                task.await.unwrap();
            }
            drop(tx);
            let mut order = Vec::new();
            while let Some(step) = rx.recv().await {
                order.push(step);
            }
            order
        });
        assert_eq!(order, ["first", "second", "woken"]);
    }

    #[test]
    fn more_serving_threads_share_a_multi_thread_runtime() {
        assert_eq!(flavor(4), RuntimeFlavor::MultiThread);
    }
}
