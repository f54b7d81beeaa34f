//! The open loop's clock: waits until an instant with the kernel's high-resolution timer, inside
//! the runtime. A Linux timerfd is registered with tokio's reactor, so the thread that waits is
//! the one that runs the ops (tokio's own timer rounds every sleep up to the next millisecond).
//! Where there is no timerfd, it falls back to tokio's timer and says so.

use tokio::time::Instant;

/// Sleeps until a given instant, to the microsecond where the kernel allows.
pub struct Pacer {
    timer: Option<timerfd::Timer>,
}

impl Pacer {
    pub fn new() -> Self {
        let timer = timerfd::Timer::new()
            .map_err(|e| eprintln!("creditd bench: {e}; the open loop paces to the millisecond"))
            .ok();
        Pacer { timer }
    }

    /// Returns at `when` (at once if it has passed).
    pub async fn until(&mut self, when: Instant) {
        if let Some(timer) = &self.timer {
            match timer.wait(when.into_std()).await {
                Ok(()) => return,
                Err(e) => {
                    eprintln!("creditd bench: {e}; the open loop paces to the millisecond");
                    self.timer = None;
                }
            }
        }
        tokio::time::sleep_until(when).await;
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

#[cfg(target_os = "linux")]
mod timerfd {
    use std::io;
    use std::os::fd::OwnedFd;
    use std::time::Instant;

    use rustix::time::{
        timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags,
        TimerfdTimerFlags, Timespec,
    };
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    /// A one-shot monotonic timerfd that tokio's reactor watches.
    pub struct Timer {
        fd: AsyncFd<OwnedFd>,
    }

    impl Timer {
        pub fn new() -> io::Result<Self> {
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )
            .map_err(|e| io::Error::other(format!("timerfd_create: {e}")))?;
            // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which owns it until it is dropped,
            // so the descriptor stays open and the same for as long as it is registered.
            let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?;
            Ok(Timer { fd })
        }

        /// Arms the timer for `when` (relative to now) and waits for it to fire.
        pub async fn wait(&self, when: Instant) -> io::Result<()> {
            let left = when.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let value = Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            };
            let zero = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let spec = Itimerspec {
                it_interval: zero,
                it_value: value,
            };
            timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::empty(), &spec)
                .map_err(|e| io::Error::other(format!("timerfd_settime: {e}")))?;
            loop {
                let mut ready = self.fd.readable().await?;
                let mut expirations = [0u8; 8];
                match ready.try_io(|fd| {
                    rustix::io::read(fd.get_ref(), &mut expirations).map_err(io::Error::from)
                }) {
                    Ok(read) => return read.map(drop),
                    Err(_would_block) => continue,
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod timerfd {
    use std::io;
    use std::time::Instant;

    /// No timerfd here: [`super::Pacer`] uses tokio's timer.
    pub struct Timer;

    impl Timer {
        pub fn new() -> io::Result<Self> {
            Err(io::Error::other("no timerfd on this system"))
        }

        pub async fn wait(&self, _when: Instant) -> io::Result<()> {
            Err(io::Error::other("no timerfd on this system"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn waits_on_a_timerfd_until_the_instant() {
        let mut pacer = Pacer::new();
        assert!(pacer.timer.is_some(), "Linux has a timerfd");
        for _ in 0..20 {
            let when = Instant::now() + Duration::from_micros(300);
            pacer.until(when).await;
            assert!(Instant::now() >= when, "woke before the instant");
        }
        assert!(pacer.timer.is_some(), "the timerfd kept working");
    }

    #[tokio::test]
    async fn an_instant_past_returns_at_once() {
        let mut pacer = Pacer::new();
        let t = Instant::now();
        pacer.until(t - Duration::from_millis(5)).await;
        assert!(t.elapsed() < Duration::from_millis(5));
    }
}
