//! What `creditd bench` parses.

use clap::{Args, ValueEnum};

use crate::cli::secure::{parse_token, BearerToken};

/// One benchmark operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// One op = Reserve then Commit of the same reservation (charges --commit-micros).
    ReserveCommit,
    /// One op = Reserve then Release (charges nothing).
    ReserveRelease,
    /// One op = one Quote (changes nothing).
    Quote,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::ReserveCommit => "reserve-commit",
            Scenario::ReserveRelease => "reserve-release",
            Scenario::Quote => "quote",
        }
    }
}

/// The HTTP/2 transport under the bench's tonic clients (see `bench::transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// tonic's generated clients over the `h2` crate's client: a unary request's HEADERS and
    /// DATA frames leave in one write, as grpc-go sends them.
    H2,
    /// tonic's `Channel` (hyper's client): HEADERS and DATA leave in two writes.
    Channel,
}

impl TransportKind {
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::H2 => "h2",
            TransportKind::Channel => "channel",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The creditd gRPC server under test (HOST:PORT, http://HOST:PORT or unix:/PATH).
    #[arg(long, env = "CREDITD_SERVER", value_parser = crate::cli::commands::parse_server_url)]
    pub target: String,
    /// The Redis the server uses; needed by --baseline-redis (the same scripts, called directly).
    #[arg(long, env = "CREDITD_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// What one operation is.
    #[arg(long, value_enum, default_value_t = Scenario::ReserveCommit)]
    pub scenario: Scenario,
    /// Closed loop: this many tasks, each starting its next op when the last one finished.
    /// With --rate: the most ops in flight at once (an op that cannot start is dropped).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds each measured phase lasts.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Open loop: start this many ops per second at fixed intervals; latency counts from the
    /// intended start (no coordinated omission). Unset: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Also run the same scenario straight against --redis-url (no gRPC, no server) and report
    /// the ratio of the two rates.
    #[arg(long, requires = "redis_url")]
    pub baseline_redis: bool,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Bearer token sent with every call (needs scopes `charge` and `admin`).
    #[arg(long, env = "CREDITD_TOKEN", hide_env_values = true, value_parser = parse_token)]
    pub token: Option<BearerToken>,
    /// Virtual shards of the deployment (must match the server's --shards).
    #[arg(long, default_value_t = 16)]
    pub shards: u32,
    /// Bench accounts to create and spread the ops over (ids start with a per-run prefix).
    #[arg(long, default_value_t = 64)]
    pub accounts: usize,
    /// Seconds of load before each measured phase (not counted).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// HTTP/2 connections to the server; the tasks share them round-robin.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Micro-credits each Reserve holds (and each Quote prices).
    #[arg(long, default_value_t = 2_000_000)]
    pub reserve_micros: i64,
    /// Micro-credits each Commit charges (reserve-commit).
    #[arg(long, default_value_t = 1_000_000)]
    pub commit_micros: i64,

    /// The measured time is cut into this many rounds, server then baseline in turn, so that a
    /// change in the machine's speed during the run weighs on both phases alike.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,

    /// Threads of the bench process's runtime. One (the default) keeps the load generator off
    /// the second core and hands calls between tasks without waking another thread.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,

    /// The baseline's Redis connections: 0 (the default) is one multiplexed connection, as the
    /// server's default; N is a deadpool pool of N connections (as `serve --redis-pool-size N`).
    #[arg(long, default_value_t = 0)]
    pub baseline_pool_size: usize,

    /// Live grants per bench account (scale: each call's script reads them all).
    #[arg(long, default_value_t = 1)]
    pub grants: usize,

    /// The HTTP/2 transport under the tonic clients.
    #[arg(long, value_enum, default_value_t = TransportKind::H2)]
    pub transport: TransportKind,

    /// Outstanding holds (1 micro-credit, a day long) made before the load, spread over the
    /// accounts (scale: 1,000 against 1,000,000). Made through the same backend, concurrently.
    #[arg(long, default_value_t = 0)]
    pub holds: u64,
}
