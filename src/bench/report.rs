//! The bench's report: one JSON object (`--json`, the last line of stdout) or a few lines of text.

use std::collections::BTreeMap;

use serde::Serialize;

use super::args::TransportKind;
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
    /// Successful calls (an op is one or two), and their latency: what one RPC, or one script
    /// round trip in the baseline, takes.
    pub calls: u64,
    pub rpc_p50_us: u64,
    pub rpc_p90_us: u64,
    pub rpc_p99_us: u64,
    pub rpc_p999_us: u64,
    /// Open loop: how late after its intended start an op began (the load generator's own
    /// delay, included in the op latencies above).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_lag_p50_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_lag_p99_us: Option<u64>,
    pub errors: u64,
    pub errors_by_status: BTreeMap<String, u64>,
    pub client_cpu_s: f64,
    /// CPU seconds the hypervisor took from the machine meanwhile (shared-VM noise).
    pub steal_s: f64,
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
    /// Redis's own time per script call, µs (`usec` / `calls` of commandstats): the scripts' cost,
    /// whatever the load generator and the server cost.
    pub script_us_per_call: f64,
    /// Server phase: clients connected to Redis after the server's warm-up under load, before
    /// the baseline connects (the bench's probe excluded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<u64>,
}

impl Phase {
    pub fn new(stats: &Stats, conservation: Conservation, redis: Option<RedisFigures>) -> Self {
        let q = |p: f64| stats.latency.value_at_quantile(p);
        let rpc = |p: f64| stats.calls.value_at_quantile(p);
        let lag =
            |p: f64| (!stats.start_lag.is_empty()).then(|| stats.start_lag.value_at_quantile(p));
        Phase {
            ops: stats.ok,
            seconds: stats.seconds,
            ops_per_s: stats.ops_per_s(),
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: stats.latency.max(),
            calls: stats.calls.len(),
            rpc_p50_us: rpc(0.5),
            rpc_p90_us: rpc(0.9),
            rpc_p99_us: rpc(0.99),
            rpc_p999_us: rpc(0.999),
            start_lag_p50_us: lag(0.5),
            start_lag_p99_us: lag(0.99),
            errors: stats.errors_total(),
            errors_by_status: stats.errors.clone(),
            client_cpu_s: stats.cpu_seconds,
            steal_s: stats.steal_seconds,
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
    /// Redis's own time per script call during the server phase, µs (with --redis-url).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_us_per_script: Option<f64>,
    /// Redis connections the server held after its warm-up under load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_clients: Option<u64>,
    /// One call's latency (one RPC; one script round trip in the baseline), p50 and p99.
    pub rpc_p50_us: u64,
    pub rpc_p99_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_rpc_p50_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_rpc_p99_us: Option<u64>,
    /// What the server adds to one call at the median: rpc_p50_us - baseline_rpc_p50_us.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_overhead_p50_us: Option<i64>,
    /// Open loop: p99 of how late the server phase's ops started (the generator's own delay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_lag_p99_us: Option<u64>,
    /// This machine's wake-up round trip before the load: one thread waking another on another
    /// CPU over a socket and being woken back, µs (see `bench::machine`). A call through the
    /// server makes one such round trip more than a call straight on Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wake_rtt_p50_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wake_rtt_p99_us: Option<f64>,
    /// Rounds the measured time was cut into (server, then baseline, in turn), and each
    /// round's ratio.
    pub rounds: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub round_ratios: Vec<f64>,
    pub client_threads: usize,
    /// The HTTP/2 transport under the bench's tonic clients (`h2` or `channel`).
    pub transport: TransportKind,
    pub baseline_pool_size: usize,
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
            "{} {} loop, concurrency {}{}, {} s (+{} s warm-up), {} accounts, {} connection(s) ({})\n",
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
            self.transport.name(),
        );
        out += &phase_text("server  ", &self.server);
        if let Some(b) = &self.baseline {
            out += &phase_text("baseline", b);
        }
        if let Some(r) = self.ratio {
            let rounds: Vec<String> = self
                .round_ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect();
            out += &format!(
                "ratio server/baseline: {r:.3} (rounds: {})\n",
                rounds.join(" ")
            );
        }
        if let Some(o) = self.rpc_overhead_p50_us {
            out += &format!("server overhead per call at p50: {o} µs\n");
        }
        if let (Some(p50), Some(p99)) = (self.wake_rtt_p50_us, self.wake_rtt_p99_us) {
            out += &format!(
                "machine: a thread wakes one on another CPU and is woken back in µs p50 {p50} p99 {p99}\n"
            );
        }
        out += &format!("conserved: {}\n", self.conserved);
        out
    }
}

fn phase_text(name: &str, p: &Phase) -> String {
    let mut out = format!(
        "{name}: {:.0} ops/s ({} ops in {:.2} s); latency µs p50 {} p90 {} p99 {} p99.9 {} max {}; \
         errors {}; client CPU {:.2} s; stolen by the hypervisor {:.2} s\n",
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
        p.steal_s,
    );
    out += &format!(
        "  per call: {} calls; latency µs p50 {} p90 {} p99 {} p99.9 {}\n",
        p.calls, p.rpc_p50_us, p.rpc_p90_us, p.rpc_p99_us, p.rpc_p999_us
    );
    if let (Some(p50), Some(p99)) = (p.start_lag_p50_us, p.start_lag_p99_us) {
        out += &format!("  open loop: ops started late by µs p50 {p50} p99 {p99}\n");
    }
    if let Some(r) = &p.redis {
        out += &format!(
            "  redis: {} scripts for {} calls ({:.3} per call), {:.1} µs of Redis time per script",
            r.script_calls, r.calls, r.script_calls_per_call, r.script_us_per_call
        );
        if let Some(clients) = r.clients {
            out += &format!(", {clients} connection(s) from the server");
        }
        out += "\n";
    }
    for (key, n) in &p.errors_by_status {
        out += &format!("  {key}: {n}\n");
    }
    for problem in &p.conservation.problems {
        out += &format!("  NOT CONSERVED: {problem}\n");
    }
    out
}
