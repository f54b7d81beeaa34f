//! The `creditd` binary: `creditd serve` runs the service; the other subcommands drive a running
//! server from the command line.

use clap::{Parser, Subcommand};

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
    /// Hash a bearer token for the tokens file, or generate a new one (no server needed).
    Token(creditd::cli::TokenArgs),
    #[command(flatten)]
    Client(creditd::cli::ClientCommand),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
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
        Command::Token(args) => creditd::cli::token::run(args),
        Command::Client(cmd) => creditd::cli::run(cmd).await,
    }
}
