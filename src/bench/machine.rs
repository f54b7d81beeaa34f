//! What this machine makes a call cost before creditd does any work: the round trip of one byte
//! between two threads on two different CPUs over a Unix socket pair, each asleep in `read`
//! until the other writes. That is one process waking another on the other CPU and being woken
//! back, which a call through the server does once more than a call straight on Redis (the
//! caller wakes the server, the server wakes the caller). On a VM whose idle vCPUs halt, it
//! costs tens of µs; on bare metal, a few. Every report carries it, so that figures taken on
//! different machines can be read side by side.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Round trips measured per report (a few tenths of a second on a slow VM).
pub const ROUND_TRIPS: usize = 2_000;

/// The wake-up round trip's percentiles, µs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WakeRoundTrip {
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Bounces one byte `n` times between two threads, pinned to two different CPUs where the
/// process may use two; the first tenth warms up and is not counted.
pub fn wake_round_trip(n: usize) -> io::Result<WakeRoundTrip> {
    let (mut here, mut there) = UnixStream::pair()?;
    let cpus = affinity::two_cpus();
    let echo = std::thread::spawn(move || -> io::Result<()> {
        if let Some((_, cpu)) = cpus {
            affinity::pin(cpu);
        }
        let mut byte = [0u8; 1];
        loop {
            if there.read(&mut byte)? == 0 {
                return Ok(());
            }
            there.write_all(&byte)?;
        }
    });
    let measure = std::thread::spawn(move || -> io::Result<Vec<Duration>> {
        if let Some((cpu, _)) = cpus {
            affinity::pin(cpu);
        }
        let warm = n / 10;
        let mut took = Vec::with_capacity(n);
        let mut byte = [0u8; 1];
        for i in 0..warm + n {
            let t = Instant::now();
            here.write_all(&byte)?;
            here.read_exact(&mut byte)?;
            if i >= warm {
                took.push(t.elapsed());
            }
        }
        Ok(took)
    });
    let panicked = |_| io::Error::other("a wake-up thread panicked");
    let mut took = measure.join().map_err(panicked)??;
    echo.join().map_err(panicked)??;
    took.sort_unstable();
    let at = |q: f64| {
        let i = ((took.len() as f64 * q) as usize).min(took.len().saturating_sub(1));
        took.get(i)
            .map_or(0.0, |d| (d.as_nanos() as f64 / 100.0).round() / 10.0)
    };
    Ok(WakeRoundTrip {
        p50_us: at(0.5),
        p99_us: at(0.99),
    })
}

#[cfg(target_os = "linux")]
mod affinity {
    use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

    /// The first two CPUs this process may run on, when it may run on two.
    pub fn two_cpus() -> Option<(usize, usize)> {
        let allowed = sched_getaffinity(None).ok()?;
        let mut cpus = (0..CpuSet::MAX_CPU).filter(|&cpu| allowed.is_set(cpu));
        Some((cpus.next()?, cpus.next()?))
    }

    /// Keeps the calling thread on `cpu` (best effort: unpinned, the figure is only noisier).
    pub fn pin(cpu: usize) {
        let mut set = CpuSet::new();
        set.set(cpu);
        let _ = sched_setaffinity(None, &set);
    }
}

#[cfg(not(target_os = "linux"))]
mod affinity {
    pub fn two_cpus() -> Option<(usize, usize)> {
        None
    }

    pub fn pin(_cpu: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_takes_some_time_and_its_p99_is_not_below_its_p50() {
        let rtt = wake_round_trip(200).expect("a socket pair and a thread");
        assert!(rtt.p50_us > 0.0, "{rtt:?}");
        assert!(rtt.p99_us >= rtt.p50_us, "{rtt:?}");
    }
}
