//! `creditd serve` configuration: clap flags, each with a `CREDITD_...` environment variable.
//!
//! Units are in the flag names (`_seconds`, `_ms`). [`ServeArgs::validate`] checks the values
//! together and returns an error to `main` instead of exiting from deep inside.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::api::validate::TtlLimits;
use crate::net::ListenAddr;

/// Longest TTL a deployment may allow: ten years, in seconds.
pub const TTL_CEILING_SECONDS: u64 = 10 * 366 * 24 * 3600;
/// Most virtual shards a deployment may use (Redis Cluster has 16384 hash slots).
pub const MAX_SHARDS: u32 = 16_384;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Clone, clap::Args)]
pub struct ServeArgs {
    /// gRPC listen address for Credits, CreditAdmin, health and reflection: IP:PORT, or
    /// unix:/PATH for a Unix socket (mode 0660: its owner and group may connect), for a caller
    /// on the same host or in the same pod.
    #[arg(long, env = "CREDITD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: ListenAddr,

    /// HTTP listen address (host:port) for GET /healthz, /readyz and /metrics (Prometheus).
    #[arg(long, env = "CREDITD_HTTP_LISTEN", default_value = "127.0.0.1:9464")]
    pub http_listen: SocketAddr,

    /// Redis URL, e.g. redis://:password@host:6379/0. Absent: the in-process memory store,
    /// whose balances are lost when the process exits (development only).
    #[arg(long, env = "CREDITD_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Number of virtual shards (Redis hash tags and event streams). Fixed per deployment:
    /// changing it moves every account to another shard.
    #[arg(long, env = "CREDITD_SHARDS", default_value_t = 16)]
    pub shards: u32,

    /// 0: every call goes over one multiplexed Redis connection (the default, and the faster:
    /// see BENCHMARKS.md). N: over a deadpool pool of N connections, one call per connection.
    #[arg(long, env = "CREDITD_REDIS_POOL_SIZE", default_value_t = 0)]
    pub redis_pool_size: usize,

    /// Hold TTL in seconds used when a Reserve asks for ttl_seconds = 0.
    #[arg(long, env = "CREDITD_DEFAULT_TTL_SECONDS", default_value_t = 300)]
    pub default_ttl_seconds: u64,

    /// Longest hold TTL in seconds that a Reserve or Extend may ask for.
    #[arg(long, env = "CREDITD_MAX_TTL_SECONDS", default_value_t = 86_400)]
    pub max_ttl_seconds: u64,

    /// Shortest hold TTL in seconds that a Reserve or Extend may ask for.
    #[arg(long, env = "CREDITD_MIN_TTL_SECONDS", default_value_t = 1)]
    pub min_ttl_seconds: u64,

    /// How often, in milliseconds, the reaper settles expired holds on every shard.
    #[arg(long, env = "CREDITD_REAP_INTERVAL_MS", default_value_t = 250)]
    pub reap_interval_ms: u64,

    /// On SIGTERM/SIGINT, how many seconds in-flight calls get to finish before exit.
    #[arg(long, env = "CREDITD_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,

    /// Threads serving calls. One is the fastest measured for a sidecar whose calls wait on
    /// Redis (fewer wake-ups across threads: +10-15% pairs/s on 2 cores, see BENCHMARKS.md), and
    /// runs a current-thread runtime, which sends the answers and script calls ready at once in
    /// one write; raise it for a shared deployment on a bigger machine, or with --reconcile.
    #[arg(long, env = "CREDITD_WORKER_THREADS", default_value_t = 1)]
    pub worker_threads: usize,

    /// Rate card file (YAML, or TOML when it ends in .toml): SKU prices in credits, plans,
    /// top-up increment. Reloaded on SIGHUP. Unset: no priced calls, GetRateCard refuses.
    #[arg(long, env = "CREDITD_PRICING", value_name = "FILE")]
    pub pricing: Option<PathBuf>,

    /// Log format (the level comes from RUST_LOG, default info).
    #[arg(long, env = "CREDITD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Tokens file (TOML): bearer token hashes with their scopes and accounts. Absent: no
    /// authorization (every call allowed), refused on a non-loopback address unless
    /// --insecure-no-auth.
    #[arg(long, env = "CREDITD_TOKENS", help_heading = "Security")]
    pub tokens: Option<PathBuf>,

    /// Serve without a tokens file on a non-loopback address (anyone who can connect may
    /// charge and administer every account).
    #[arg(long, env = "CREDITD_INSECURE_NO_AUTH", help_heading = "Security")]
    pub insecure_no_auth: bool,

    /// TLS certificate chain (PEM) for the gRPC listener; needs --tls-key.
    #[arg(long, env = "CREDITD_TLS_CERT", help_heading = "Security")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) for --tls-cert.
    #[arg(long, env = "CREDITD_TLS_KEY", help_heading = "Security")]
    pub tls_key: Option<PathBuf>,

    /// CA certificate (PEM): clients must present a certificate it signed (mTLS); needs
    /// --tls-cert.
    #[arg(long, env = "CREDITD_TLS_CLIENT_CA", help_heading = "Security")]
    pub tls_client_ca: Option<PathBuf>,

    /// Postgres URL of the ledger. Set: accounts missing from Redis are loaded from the ledger on
    /// first use, CreditAdmin's reports (usage, P&L, ledger entries, audit) read it, and
    /// --reconcile may run the reconciler in this process.
    #[arg(
        long,
        env = "CREDITD_DATABASE_URL",
        hide_env_values = true,
        help_heading = "Ledger"
    )]
    pub database_url: Option<String>,

    /// Also run the reconciler in this process (small deployments; needs --database-url and
    /// --redis-url). Larger ones run `creditd reconcile` apart.
    #[arg(long, env = "CREDITD_RECONCILE", help_heading = "Ledger")]
    pub reconcile: bool,

    /// The in-process reconciler's settings (with --reconcile).
    #[command(flatten)]
    pub reconcile_tuning: crate::ledger::commands::ReconcileTuning,

    /// Most Postgres connections the reports (GetUsage, GetProfitAndLoss, ListLedgerEntries,
    /// ListAuditEvents) use at once; a pool of its own, apart from the hot path's.
    #[arg(
        long,
        env = "CREDITD_REPORT_CONNECTIONS",
        default_value_t = 4,
        help_heading = "Ledger"
    )]
    pub report_connections: usize,
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs {
            listen: ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 50051))),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            redis_url: None,
            shards: 16,
            default_ttl_seconds: 300,
            max_ttl_seconds: 86_400,
            min_ttl_seconds: 1,
            reap_interval_ms: 250,
            shutdown_grace_seconds: 10,
            worker_threads: 1,
            redis_pool_size: 0,
            pricing: None,
            log_format: LogFormat::Text,
            tokens: None,
            insecure_no_auth: false,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            database_url: None,
            reconcile: false,
            reconcile_tuning: crate::ledger::commands::ReconcileTuning::default(),
            report_connections: 4,
        }
    }
}

impl ServeArgs {
    /// Checks the values together; the error names the flag.
    pub fn validate(&self) -> Result<()> {
        if self.shards == 0 || self.shards > MAX_SHARDS {
            bail!(
                "--shards must be between 1 and {MAX_SHARDS}, got {}",
                self.shards
            );
        }
        if self.min_ttl_seconds == 0 {
            bail!("--min-ttl-seconds must be at least 1");
        }
        if self.max_ttl_seconds > TTL_CEILING_SECONDS {
            bail!(
                "--max-ttl-seconds must be at most {TTL_CEILING_SECONDS} (ten years), got {}",
                self.max_ttl_seconds
            );
        }
        if self.min_ttl_seconds > self.max_ttl_seconds {
            bail!(
                "--min-ttl-seconds ({}) must not exceed --max-ttl-seconds ({})",
                self.min_ttl_seconds,
                self.max_ttl_seconds
            );
        }
        if self.default_ttl_seconds < self.min_ttl_seconds
            || self.default_ttl_seconds > self.max_ttl_seconds
        {
            bail!(
                "--default-ttl-seconds ({}) must be between --min-ttl-seconds ({}) and --max-ttl-seconds ({})",
                self.default_ttl_seconds,
                self.min_ttl_seconds,
                self.max_ttl_seconds
            );
        }
        if self.reap_interval_ms == 0 || self.reap_interval_ms > 60_000 {
            bail!(
                "--reap-interval-ms must be between 1 and 60000, got {}",
                self.reap_interval_ms
            );
        }
        if self.report_connections == 0 || self.report_connections > 1000 {
            bail!(
                "--report-connections must be between 1 and 1000, got {}",
                self.report_connections
            );
        }
        if let Some(url) = &self.redis_url {
            if url.trim().is_empty() {
                bail!("--redis-url is empty (leave it unset for the memory store)");
            }
        }
        self.validate_security()
    }

    /// TLS flags come in pairs; without a tokens file only loopback addresses are allowed,
    /// unless `--insecure-no-auth`.
    pub fn validate_security(&self) -> Result<()> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bail!("--tls-cert needs --tls-key"),
            (None, Some(_)) => bail!("--tls-key needs --tls-cert"),
            _ => {}
        }
        if self.worker_threads == 0 || self.worker_threads > 1024 {
            bail!(
                "--worker-threads must be between 1 and 1024, got {}",
                self.worker_threads
            );
        }
        if self.redis_pool_size > 1024 {
            bail!(
                "--redis-pool-size must be at most 1024, got {}",
                self.redis_pool_size
            );
        }
        if self.redis_pool_size > 0 && self.redis_url.is_none() {
            bail!("--redis-pool-size needs --redis-url");
        }
        if self.reconcile && (self.database_url.is_none() || self.redis_url.is_none()) {
            bail!("--reconcile needs --database-url and --redis-url");
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            bail!("--tls-client-ca needs --tls-cert and --tls-key (mTLS is on top of TLS)");
        }
        if self.tokens.is_none() && !self.insecure_no_auth {
            if let Some(addr) = self.exposed_address() {
                bail!(
                    "refusing to listen on {addr} without authorization: give --tokens FILE \
                     (see `creditd token hash`), listen on a loopback address or a Unix \
                     socket, or pass --insecure-no-auth"
                );
            }
        }
        Ok(())
    }

    /// The first listen address (gRPC, then HTTP) that is reachable from other machines: not
    /// loopback, not a Unix socket.
    pub fn exposed_address(&self) -> Option<ListenAddr> {
        [self.listen.clone(), ListenAddr::Tcp(self.http_listen)]
            .into_iter()
            .find(|a| !a.is_local())
    }

    /// The TTL bounds the API applies (values already checked by [`ServeArgs::validate`]).
    pub fn ttl_limits(&self) -> TtlLimits {
        TtlLimits {
            min: self.min_ttl_seconds as i64,
            default: self.default_ttl_seconds as i64,
            max: self.max_ttl_seconds as i64,
        }
    }

    pub fn reap_interval(&self) -> Duration {
        Duration::from_millis(self.reap_interval_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    /// The Redis URL with its password masked, for logs.
    pub fn redis_url_masked(&self) -> Option<String> {
        self.redis_url.as_deref().map(mask_url)
    }
}

/// Debug output never shows the Redis password.
impl fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeArgs")
            .field("listen", &self.listen)
            .field("http_listen", &self.http_listen)
            .field("redis_url", &self.redis_url_masked())
            .field("shards", &self.shards)
            .field("default_ttl_seconds", &self.default_ttl_seconds)
            .field("max_ttl_seconds", &self.max_ttl_seconds)
            .field("min_ttl_seconds", &self.min_ttl_seconds)
            .field("reap_interval_ms", &self.reap_interval_ms)
            .field("shutdown_grace_seconds", &self.shutdown_grace_seconds)
            .field("pricing", &self.pricing)
            .field("log_format", &self.log_format)
            .field("tokens", &self.tokens)
            .field("insecure_no_auth", &self.insecure_no_auth)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_client_ca", &self.tls_client_ca)
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("worker_threads", &self.worker_threads)
            .field("reconcile", &self.reconcile)
            .field("reconcile_tuning", &self.reconcile_tuning)
            .field("report_connections", &self.report_connections)
            .finish()
    }
}

/// Replaces the password of a URL (`scheme://user:password@host`) with `****`. A URL that does not
/// parse is still masked between `://` and the last `@`.
pub fn mask_url(raw: &str) -> String {
    if let Ok(mut url) = url::Url::parse(raw) {
        if url.password().is_some() && url.set_password(Some("****")).is_ok() {
            return url.to_string();
        }
        if url.password().is_none() {
            return url.to_string();
        }
    }
    match (raw.find("://"), raw.rfind('@')) {
        (Some(start), Some(at)) if at > start + 3 => {
            let userinfo = &raw[start + 3..at];
            let masked = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:****"),
                None => "****".to_string(),
            };
            format!("{}{}{}", &raw[..start + 3], masked, &raw[at..])
        }
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> ServeArgs {
        let mut all = vec!["creditd"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("parse").serve
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let a = parse(&[]);
        assert_eq!(a.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(a.http_listen.to_string(), "127.0.0.1:9464");
        assert_eq!(a.shards, 16);
        assert_eq!(
            a.ttl_limits(),
            TtlLimits {
                min: 1,
                default: 300,
                max: 86_400
            }
        );
        assert_eq!(a.reap_interval(), Duration::from_millis(250));
        assert_eq!(a.shutdown_grace(), Duration::from_secs(10));
        assert_eq!(a.log_format, LogFormat::Text);
        assert_eq!(a.worker_threads, 1);
        assert_eq!(a.redis_pool_size, 0);
        assert!(!a.reconcile && a.database_url.is_none());
        assert!(a.validate().is_ok());
    }

    #[test]
    fn validation_refuses_inconsistent_values() {
        let cases: &[(&[&str], &str)] = &[
            (&["--shards", "0"], "--shards"),
            (&["--default-ttl-seconds", "90000"], "--default-ttl-seconds"),
            (&["--min-ttl-seconds", "0"], "--min-ttl-seconds"),
            (
                &["--min-ttl-seconds", "10", "--max-ttl-seconds", "5"],
                "--min-ttl-seconds",
            ),
            (&["--reap-interval-ms", "0"], "--reap-interval-ms"),
            (&["--max-ttl-seconds", "999999999"], "--max-ttl-seconds"),
            (&["--tls-cert", "c.pem"], "--tls-key"),
            (&["--tls-key", "k.pem"], "--tls-cert"),
            (&["--tls-client-ca", "ca.pem"], "--tls-client-ca"),
            (&["--listen", "0.0.0.0:50051"], "--insecure-no-auth"),
            (&["--http-listen", "[::]:9464"], "--insecure-no-auth"),
            (&["--worker-threads", "0"], "--worker-threads"),
            (&["--redis-pool-size", "4"], "--redis-pool-size"),
            (
                &["--redis-url", "redis://h/", "--redis-pool-size", "5000"],
                "--redis-pool-size",
            ),
            (&["--reconcile"], "--reconcile"),
            (
                &["--reconcile", "--database-url", "postgres://h/db"],
                "--reconcile",
            ),
        ];
        for (args, flag) in cases {
            let err = parse(args).validate().expect_err("must be refused");
            assert!(err.to_string().contains(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn exposed_addresses_need_tokens_or_the_insecure_flag() {
        for args in [
            &["--listen", "0.0.0.0:1", "--tokens", "t.toml"][..],
            &["--listen", "0.0.0.0:1", "--insecure-no-auth"],
            &["--listen", "[::1]:1", "--http-listen", "127.0.0.2:2"],
            &["--listen", "unix:/run/creditd/grpc.sock"],
            &["--tls-cert", "c", "--tls-key", "k", "--tls-client-ca", "ca"],
        ] {
            assert!(parse(args).validate().is_ok(), "{args:?}");
        }
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_url("redis://:s3cret@localhost:6379/0"),
            "redis://:****@localhost:6379/0"
        );
        assert_eq!(
            mask_url("rediss://app:s3cret@redis.internal:6380"),
            "rediss://app:****@redis.internal:6380"
        );
        assert_eq!(mask_url("redis://localhost:6379"), "redis://localhost:6379");
        assert!(!mask_url("redis://u:p@ss@host").contains("p@ss"));
        let args = ServeArgs {
            redis_url: Some("redis://:hunter2@h:1".into()),
            ..ServeArgs::default()
        };
        assert!(!format!("{args:?}").contains("hunter2"));
    }
}
