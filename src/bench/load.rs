//! The two ways of putting load on a backend: a closed loop (N tasks, each op back to back) and
//! an open loop (ops started at a fixed rate, at most N in flight, latency counted from the
//! intended start so that a slow answer delays no measurement).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::time::Instant;

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
    pub seconds: f64,
    /// User + system CPU seconds of this process during the phase.
    pub cpu_seconds: f64,
}

impl Stats {
    fn new() -> Self {
        Stats {
            ok: 0,
            errors: BTreeMap::new(),
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds"),
            seconds: 0.0,
            cpu_seconds: 0.0,
        }
    }

    fn record(&mut self, result: Result<(), String>, elapsed: Duration) {
        match result {
            Ok(()) => {
                self.ok += 1;
                let us = (elapsed.as_micros() as u64).clamp(1, MAX_LATENCY_US);
                self.latency.record(us).expect("clamped into the bounds");
            }
            Err(key) => *self.errors.entry(key).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.latency.add(&other.latency).expect("same bounds");
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
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
    let started = Instant::now();
    let mut stats = match rate {
        Some(rate) => open_loop(driver, concurrency.max(1), duration, rate, started).await,
        None => closed_loop(driver, concurrency.max(1), duration, started).await,
    };
    stats.seconds = started.elapsed().as_secs_f64();
    stats.cpu_seconds = cpu_seconds() - cpu_before;
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
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let result = driver.op(worker).await;
                    stats.record(result, t.elapsed());
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
    let period = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let shared = Arc::new(Mutex::new(Stats::new()));
    let mut dropped = 0u64;
    for i in 0u64.. {
        // The intended start of op i: a late one is measured from here, not from when it began.
        let intended = started + period.mul_f64(i as f64);
        if intended >= started + duration {
            break;
        }
        tokio::time::sleep_until(intended).await;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        let (driver, shared) = (driver.clone(), shared.clone());
        tokio::spawn(async move {
            let result = driver.op(i as usize).await;
            let elapsed = intended.elapsed();
            if let Ok(mut stats) = shared.lock() {
                stats.record(result, elapsed);
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
        Ok(mut stats) => std::mem::replace(&mut *stats, Stats::new()),
        Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), Stats::new()),
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
}
