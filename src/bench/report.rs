//! The bench's report: one JSON object (`--json`, the last line of stdout) or a few lines of text.

use std::collections::BTreeMap;

use serde::Serialize;

use super::load::Stats;
use super::scenario::Conservation;

/// One phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_s: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub errors: u64,
    pub errors_by_status: BTreeMap<String, u64>,
    pub client_cpu_s: f64,
    pub conservation: Conservation,
    /// What Redis counted during the measured phase (with --redis-url).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisFigures>,
}

/// What Redis counted during a measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct RedisFigures {
    /// Scripts Redis ran (EVALSHA and the like), from `INFO commandstats`; includes whatever
    /// else used the same Redis meanwhile, such as the server's reaper.
    pub script_calls: u64,
    /// The calls the bench made (gRPC RPCs, or store calls in the baseline).
    pub calls: u64,
    pub script_calls_per_call: f64,
    /// Clients connected to Redis at the end of the phase, the bench's probe excluded (the
    /// baseline's own store connection included in the baseline phase).
    pub clients: u64,
}

impl Phase {
    pub fn new(stats: &Stats, conservation: Conservation, redis: Option<RedisFigures>) -> Self {
        let q = |p: f64| stats.latency.value_at_quantile(p);
        Phase {
            ops: stats.ok,
            seconds: stats.seconds,
            ops_per_s: if stats.seconds > 0.0 {
                stats.ok as f64 / stats.seconds
            } else {
                0.0
            },
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: stats.latency.max(),
            errors: stats.errors_total(),
            errors_by_status: stats.errors.clone(),
            client_cpu_s: stats.cpu_seconds,
            conservation,
            redis,
        }
    }
}

/// The whole run. Flat fields for scripts; `server` and `baseline` keep every detail.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub mode: &'static str,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub accounts: usize,
    /// Live grants per account, and outstanding holds made before the load.
    pub grants: usize,
    pub holds: u64,
    pub channels: usize,
    pub shards: u32,
    pub ops: u64,
    pub ops_per_s: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub errors: u64,
    pub errors_by_status: BTreeMap<String, u64>,
    pub client_cpu_s: f64,
    /// Both phases kept every credit: granted = available + held + spent, and spent is exactly
    /// the successful commits times the commit amount.
    pub conserved: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_ops_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_p50_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_p90_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_p99_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_p999_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_client_cpu_s: Option<f64>,
    /// ops_per_s / baseline_ops_per_s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Scripts Redis ran per gRPC call during the server phase (with --redis-url).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_scripts_per_rpc: Option<f64>,
    /// Clients connected to Redis after the server phase, the bench's probe excluded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_clients: Option<u64>,
    /// Scripts per store call in the baseline (1 by construction: a check of the probe).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_redis_scripts_per_call: Option<f64>,
    pub server: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Phase>,
}

impl Report {
    pub fn conserved(&self) -> bool {
        self.conserved
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} {} loop, concurrency {}{}, {} s (+{} s warm-up), {} accounts, {} channel(s)\n",
            self.scenario,
            self.mode,
            self.concurrency,
            self.rate
                .map(|r| format!(", rate {r} ops/s"))
                .unwrap_or_default(),
            self.duration_s,
            self.warmup_s,
            self.accounts,
            self.channels,
        );
        out += &phase_text("server  ", &self.server);
        if let Some(b) = &self.baseline {
            out += &phase_text("baseline", b);
        }
        if let Some(r) = self.ratio {
            out += &format!("ratio server/baseline: {r:.3}\n");
        }
        out += &format!("conserved: {}\n", self.conserved);
        out
    }
}

fn phase_text(name: &str, p: &Phase) -> String {
    let mut out = format!(
        "{name}: {:.0} ops/s ({} ops in {:.2} s); latency µs p50 {} p90 {} p99 {} p99.9 {} max {}; \
         errors {}; client CPU {:.2} s\n",
        p.ops_per_s,
        p.ops,
        p.seconds,
        p.p50_us,
        p.p90_us,
        p.p99_us,
        p.p999_us,
        p.max_us,
        p.errors,
        p.client_cpu_s,
    );
    if let Some(r) = &p.redis {
        out += &format!(
            "  redis: {} scripts for {} calls ({:.3} per call), {} client(s) connected\n",
            r.script_calls, r.calls, r.script_calls_per_call, r.clients
        );
    }
    for (key, n) in &p.errors_by_status {
        out += &format!("  {key}: {n}\n");
    }
    for problem in &p.conservation.problems {
        out += &format!("  NOT CONSERVED: {problem}\n");
    }
    out
}
