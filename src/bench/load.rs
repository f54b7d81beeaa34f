//! The two ways of putting load on a backend: a closed loop (N tasks, each op back to back) and
//! an open loop (ops started at a fixed rate, at most N in flight, latency counted from the
//! intended start so that a slow answer delays no measurement).
//!
//! The open loop runs on the runtime's worker thread, clocked by a [`Pacer`]: a Linux timerfd
//! that the runtime's own reactor waits on, so each op starts on the kernel's high-resolution
//! timer (tokio's timer rounds every sleep up to the next millisecond) without a thread of its
//! own handing ops over. How late each op really started is measured too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::pacer::Pacer;
use super::scenario::Driver;

/// The longest latency the histograms hold (longer ones are recorded as this), in µs.
const MAX_LATENCY_US: u64 = 60_000_000;

/// What one phase measured.
pub struct Stats {
    pub ok: u64,
    /// Failed ops by `CODE/REASON`; ops the open loop could not start are `DROPPED`.
    pub errors: BTreeMap<String, u64>,
    /// Latency of the successful ops, in µs.
    pub latency: Histogram<u64>,
    /// Latency of each call that succeeded (an op is one or two calls), in µs.
    pub calls: Histogram<u64>,
    /// Open loop: how long after its intended start each op began, in µs.
    pub start_lag: Histogram<u64>,
    pub seconds: f64,
    /// User + system CPU seconds of this process during the phase.
    pub cpu_seconds: f64,
    /// CPU seconds the hypervisor took from this machine during the phase (steal, all CPUs):
    /// a shared VM's noise, which the tail latencies include.
    pub steal_seconds: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_LATENCY_US)
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            ok: 0,
            errors: BTreeMap::new(),
            latency: histogram(),
            calls: histogram(),
            start_lag: histogram(),
            seconds: 0.0,
            cpu_seconds: 0.0,
            steal_seconds: 0.0,
        }
    }

    fn record(&mut self, result: Result<(), String>, elapsed: Duration, calls: &[Duration]) {
        for call in calls {
            self.calls.record(micros(*call)).expect("clamped");
        }
        match result {
            Ok(()) => {
                self.ok += 1;
                self.latency.record(micros(elapsed)).expect("clamped");
            }
            Err(key) => *self.errors.entry(key).or_default() += 1,
        }
    }

    /// Adds another measurement of the same backend (another round, or another task).
    pub fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.latency.add(&other.latency).expect("same bounds");
        self.calls.add(&other.calls).expect("same bounds");
        self.start_lag.add(&other.start_lag).expect("same bounds");
        self.seconds += other.seconds;
        self.cpu_seconds += other.cpu_seconds;
        self.steal_seconds += other.steal_seconds;
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn ops_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ok as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

/// Runs the load for `duration`: open loop at `rate` ops/s when given, else closed loop.
/// `concurrency` is the number of tasks (closed) or the most ops in flight (open).
pub async fn run(
    driver: Arc<Driver>,
    concurrency: usize,
    duration: Duration,
    rate: Option<f64>,
) -> Stats {
    let cpu_before = cpu_seconds();
    let steal_before = steal_seconds();
    let started = Instant::now();
    let mut stats = match rate {
        Some(rate) => open_loop(driver, concurrency.max(1), duration, rate, started).await,
        None => closed_loop(driver, concurrency.max(1), duration, started).await,
    };
    stats.seconds = started.elapsed().as_secs_f64();
    stats.cpu_seconds = cpu_seconds() - cpu_before;
    stats.steal_seconds = steal_seconds() - steal_before;
    stats
}

async fn closed_loop(
    driver: Arc<Driver>,
    concurrency: usize,
    duration: Duration,
    started: Instant,
) -> Stats {
    let deadline = started + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let driver = driver.clone();
            tokio::spawn(async move {
                let mut stats = Stats::new();
                let mut calls = Vec::with_capacity(2);
                while Instant::now() < deadline {
                    calls.clear();
                    let t = Instant::now();
                    let result = driver.op(worker, &mut calls).await;
                    stats.record(result, t.elapsed(), &calls);
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::new();
    for task in tasks {
        match task.await {
            Ok(stats) => total.merge(stats),
            Err(e) => *total.errors.entry(format!("PANIC/{e}")).or_default() += 1,
        }
    }
    total
}

async fn open_loop(
    driver: Arc<Driver>,
    max_in_flight: usize,
    duration: Duration,
    rate: f64,
    started: Instant,
) -> Stats {
    // The pacing and the ops it starts share the worker thread: an op that is due is spawned
    // where it runs, with no thread waking another (`block_on` runs the caller elsewhere).
    match tokio::spawn(pace(driver, max_in_flight, duration, rate, started)).await {
        Ok(stats) => stats,
        Err(e) => {
            let mut stats = Stats::new();
            stats.errors.insert(format!("PANIC/{e}"), 1);
            stats
        }
    }
}

/// Starts op `i` at `started + i / rate` for every op due before `started + duration`, at most
/// `max_in_flight` at once (an op due while all are busy is not started: `DROPPED`), then waits
/// for the ops in flight.
async fn pace(
    driver: Arc<Driver>,
    max_in_flight: usize,
    duration: Duration,
    rate: f64,
    started: Instant,
) -> Stats {
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let shared = Arc::new(Mutex::new(Stats::new()));
    let mut dropped = 0u64;
    let mut pacer = Pacer::new();
    let period = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    for i in 0u64.. {
        let intended = started + period.mul_f64(i as f64);
        if intended >= started + duration {
            break;
        }
        pacer.until(intended).await;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        let (driver, shared) = (driver.clone(), shared.clone());
        tokio::spawn(async move {
            // A late op is measured from its intended start, not from when it began.
            let lag = intended.elapsed();
            let mut calls = Vec::with_capacity(2);
            let result = driver.op(i as usize, &mut calls).await;
            let elapsed = intended.elapsed();
            if let Ok(mut stats) = shared.lock() {
                stats.start_lag.record(micros(lag)).expect("clamped");
                stats.record(result, elapsed, &calls);
            }
            drop(permit);
        });
    }
    // Wait for the ops still in flight.
    let _all = permits
        .acquire_many(max_in_flight as u32)
        .await
        .expect("never closed");
    // Every op has recorded itself (a task releases its permit last); take what they recorded.
    let mut stats = match shared.lock() {
        Ok(mut stats) => std::mem::take(&mut *stats),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    if dropped > 0 {
        stats.errors.insert("DROPPED".into(), dropped);
    }
    stats
}

/// User + system CPU seconds of this process so far, from `/proc/self/stat` (fields 14 and 15,
/// in clock ticks of 1/100 s: Linux's USER_HZ). 0 where there is no /proc.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// CPU seconds stolen from this machine by its hypervisor so far, over all CPUs: the `steal`
/// field (the eighth number) of the `cpu` line of `/proc/stat`, in USER_HZ ticks. 0 where there
/// is no /proc.
pub fn steal_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    steal_of(&stat)
}

fn steal_of(stat: &str) -> f64 {
    stat.lines()
        .find_map(|line| line.strip_prefix("cpu "))
        .and_then(|fields| fields.split_whitespace().nth(7)?.parse::<u64>().ok())
        .map_or(0.0, |ticks| ticks as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_seconds();
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        let spent = cpu_seconds() - before;
        assert!(spent > 0.05, "spent {spent} s");
    }

    #[test]
    fn steal_is_the_eighth_number_of_the_cpu_line() {
        let stat = "cpu  161027 0 15884 149736 1335 0 6687 12369 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(steal_of(stat), 123.69);
        assert_eq!(steal_of("intr 1 2 3\n"), 0.0);
    }
}
