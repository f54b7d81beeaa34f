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
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    match &cli.command {
        Command::Serve(args) => {
            runtime.worker_threads(args.worker_threads.clamp(1, 1024));
        }
        Command::Bench(args) => {
            runtime.worker_threads(args.client_threads.clamp(1, 1024));
        }
        _ => {}
    }
    match runtime.build() {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => {
            eprintln!("creditd: cannot start the runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
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
