//! How an endpoint waits for its peer: spin, then yield, then sleep with
//! exponential back-off. The fast path (peer already there) never reaches the
//! sleeping phase, and no phase makes a system call until spinning is done.

use std::time::{Duration, Instant};

use crate::RingError;

/// A waiting policy, chosen per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitStrategy {
    /// Polls with [`std::hint::spin_loop`] before yielding.
    pub spins: u32,
    /// Polls with [`std::thread::yield_now`] before sleeping.
    pub yields: u32,
    /// First sleep; each further sleep doubles up to `max_sleep`.
    pub min_sleep: Duration,
    /// Longest single sleep.
    pub max_sleep: Duration,
}

impl WaitStrategy {
    /// Lowest latency: a long spin budget (a dedicated core is assumed).
    pub const LOW_LATENCY: WaitStrategy = WaitStrategy {
        spins: 1 << 20,
        yields: 1 << 10,
        min_sleep: Duration::from_micros(10),
        max_sleep: Duration::from_millis(1),
    };
    /// A balanced default: a short spin, then yield (about a millisecond
    /// in all), then sleep in steps of at most 100 µs, so that a long wait
    /// (a large transfer, a kernel) overshoots by little while an idle
    /// endpoint costs a wake-up every 100 µs.
    pub const BALANCED: WaitStrategy = WaitStrategy {
        spins: 1 << 14,
        yields: 1 << 10,
        min_sleep: Duration::from_micros(20),
        max_sleep: Duration::from_micros(100),
    };
    /// For an end that sleeps on a doorbell once idle (see
    /// [`crate::bell`]): spins for a few tens of microseconds — a busy
    /// peer's next message comes sooner — then is ready to sleep; the
    /// sleeps here apply only where no bell can be used.
    pub const DOORBELL: WaitStrategy = WaitStrategy {
        spins: 1 << 11,
        yields: 0,
        min_sleep: Duration::from_micros(20),
        max_sleep: Duration::from_micros(100),
    };
    /// Idle-friendly: spins briefly and soon sleeps (for idle VMs or shared cores).
    pub const IDLE: WaitStrategy = WaitStrategy {
        spins: 256,
        yields: 16,
        min_sleep: Duration::from_micros(50),
        max_sleep: Duration::from_millis(10),
    };
}

impl Default for WaitStrategy {
    fn default() -> Self {
        WaitStrategy::BALANCED
    }
}

/// One wait in progress: call [`Backoff::snooze`] after each unsuccessful poll.
#[derive(Debug)]
pub struct Backoff<'a> {
    strategy: &'a WaitStrategy,
    polls: u64,
    sleep: Duration,
}

impl<'a> Backoff<'a> {
    /// Starts a wait.
    pub fn new(strategy: &'a WaitStrategy) -> Backoff<'a> {
        Backoff {
            strategy,
            polls: 0,
            sleep: strategy.min_sleep,
        }
    }

    /// Whether this wait has reached its sleeping phase.
    pub fn is_sleeping(&self) -> bool {
        self.polls >= u64::from(self.strategy.spins) + u64::from(self.strategy.yields)
    }

    /// Waits a little, according to the phase reached. Clocks are read only
    /// once spinning is over; past `deadline`, returns [`RingError::Timeout`].
    #[inline]
    pub fn snooze(&mut self, deadline: Option<Instant>) -> Result<(), RingError> {
        let s = self.strategy;
        self.polls += 1;
        if self.polls <= u64::from(s.spins) {
            std::hint::spin_loop();
            // Check the deadline now and then even while spinning.
            if self.polls.is_multiple_of(4096) {
                check(deadline)?;
            }
            return Ok(());
        }
        check(deadline)?;
        if self.polls <= u64::from(s.spins) + u64::from(s.yields) {
            std::thread::yield_now();
        } else {
            let mut nap = self.sleep;
            if let Some(d) = deadline {
                nap = nap.min(d.saturating_duration_since(Instant::now()));
            }
            std::thread::sleep(nap);
            self.sleep = (self.sleep * 2).min(s.max_sleep);
        }
        Ok(())
    }
}

/// Calls `attempt` until it succeeds (`Ok(true)`), waiting with `wait`
/// between tries; [`RingError::Timeout`] after `timeout`, if one is given.
/// The first try reads no clock, so an attempt that succeeds at once costs
/// nothing more than itself.
#[inline]
pub(crate) fn retry(
    wait: &WaitStrategy,
    timeout: Option<Duration>,
    mut attempt: impl FnMut() -> Result<bool, RingError>,
) -> Result<(), RingError> {
    if attempt()? {
        return Ok(());
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut backoff = Backoff::new(wait);
    loop {
        backoff.snooze(deadline)?;
        if attempt()? {
            return Ok(());
        }
    }
}

fn check(deadline: Option<Instant>) -> Result<(), RingError> {
    match deadline {
        Some(d) if Instant::now() >= d => Err(RingError::Timeout),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_progress_and_time_out() {
        let s = WaitStrategy {
            spins: 3,
            yields: 2,
            min_sleep: Duration::from_micros(1),
            max_sleep: Duration::from_micros(4),
        };
        let mut b = Backoff::new(&s);
        for _ in 0..5 {
            assert!(!b.is_sleeping());
            b.snooze(None).unwrap();
        }
        assert!(b.is_sleeping());
        for _ in 0..4 {
            b.snooze(None).unwrap();
        }
        assert_eq!(b.sleep, Duration::from_micros(4));
        let past = Instant::now();
        let mut b = Backoff::new(&WaitStrategy::IDLE);
        let mut result = Ok(());
        for _ in 0..1000 {
            result = b.snooze(Some(past));
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(RingError::Timeout));
    }
}
