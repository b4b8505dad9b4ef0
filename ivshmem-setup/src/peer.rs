//! A test peer pair that proves a region works end to end, before any API
//! is remoted over it: `ping` (guest side) claims a channel and sends
//! numbered messages; `echo` (host side) takes the worker lease of one or
//! more regions, serves every claimed channel and answers each message with
//! its number doubled.
//!
//! Message format: 8 bytes, a little-endian `u64`. Ping sends `1..=count`;
//! echo answers `n * 2` (wrapping).

use std::fmt;
use std::time::{Duration, Instant};

use transport::{LivenessTracker, Region, RingError, WaitStrategy, WorkerChannel};

/// Errors of the test peers.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Opening, claiming or leasing the region failed.
    #[error(transparent)]
    Transport(#[from] transport::Error),
    /// A ring operation failed.
    #[error("{what}: {source}")]
    Ring {
        /// What was being done.
        what: String,
        /// The ring's error.
        #[source]
        source: RingError,
    },
    /// The host side did not answer in time.
    #[error(
        "no answer to message {seq} within {timeout:?} on channel {channel}: is `ivshmem-setup echo` (or the worker) serving this region on the host? (worker lease in the region: {lease})"
    )]
    NoAnswer {
        /// The message number.
        seq: u64,
        /// How long ping waited.
        timeout: Duration,
        /// The channel used.
        channel: u32,
        /// Who holds the worker lease, in words.
        lease: String,
    },
    /// The answer was not the message number doubled.
    #[error("message {seq}: expected answer {expected}, got {got}")]
    WrongAnswer {
        /// The message number.
        seq: u64,
        /// What echo should have answered.
        expected: u64,
        /// What arrived, in words.
        got: String,
    },
}

fn ring(what: impl Into<String>) -> impl FnOnce(RingError) -> PeerError {
    let what = what.into();
    move |source| PeerError::Ring { what, source }
}

/// How `ping` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingOptions {
    /// Messages to send (at least 1).
    pub count: u64,
    /// How long to wait for each answer.
    pub timeout: Duration,
    /// How to wait.
    pub wait: WaitStrategy,
}

impl Default for PingOptions {
    fn default() -> Self {
        PingOptions {
            count: 1000,
            timeout: Duration::from_secs(10),
            wait: WaitStrategy::BALANCED,
        }
    }
}

/// Round-trip statistics of a `ping` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingStats {
    /// The channel used.
    pub channel: u32,
    /// Round trips made.
    pub count: u64,
    /// Wall time of the whole run.
    pub total: Duration,
    /// Fastest round trip.
    pub min: Duration,
    /// Median round trip.
    pub p50: Duration,
    /// 99th percentile round trip.
    pub p99: Duration,
    /// Slowest round trip.
    pub max: Duration,
    /// Mean round trip.
    pub mean: Duration,
}

impl PingStats {
    /// Statistics of the given round-trip times (not empty).
    fn from_samples(channel: u32, total: Duration, mut rtts: Vec<Duration>) -> PingStats {
        rtts.sort_unstable();
        let n = rtts.len();
        let at = |q: f64| rtts[((n as f64 * q).ceil() as usize).clamp(1, n) - 1];
        let sum: Duration = rtts.iter().sum();
        PingStats {
            channel,
            count: n as u64,
            total,
            min: rtts[0],
            p50: at(0.50),
            p99: at(0.99),
            max: rtts[n - 1],
            mean: sum / n as u32,
        }
    }
}

fn us(d: Duration) -> String {
    format!("{:.1}us", d.as_secs_f64() * 1e6)
}

impl fmt::Display for PingStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ping: {} round trips on channel {} in {:.3}s: min {} p50 {} p99 {} max {} mean {}",
            self.count,
            self.channel,
            self.total.as_secs_f64(),
            us(self.min),
            us(self.p50),
            us(self.p99),
            us(self.max),
            us(self.mean)
        )
    }
}

fn lease(region: &Region) -> String {
    match region.worker_pid() {
        0 => "none".into(),
        pid => format!("pid {pid}, heartbeat {}", region.worker_heartbeat()),
    }
}

/// Guest side: claims a channel of `region`, sends `opts.count` numbered
/// messages one at a time and checks each answer.
pub fn ping(region: &Region, opts: &PingOptions) -> Result<PingStats, PeerError> {
    assert!(opts.count > 0, "ping needs at least one message");
    let mut ch = region.claim()?;
    let channel = ch.index();
    tracing::info!(channel, generation = ch.generation(), "channel claimed");
    let mut rtts = Vec::with_capacity(opts.count.min(1 << 24) as usize);
    let mut answer = Vec::with_capacity(8);
    let start = Instant::now();
    for seq in 1..=opts.count {
        let t0 = Instant::now();
        ch.tx
            .send(&seq.to_le_bytes(), &opts.wait, Some(opts.timeout))
            .map_err(ring(format!("sending message {seq}")))?;
        match ch.rx.recv(&mut answer, &opts.wait, Some(opts.timeout)) {
            Ok(()) => {}
            Err(RingError::Timeout) => {
                return Err(PeerError::NoAnswer {
                    seq,
                    timeout: opts.timeout,
                    channel,
                    lease: lease(region),
                });
            }
            Err(e) => return Err(ring(format!("receiving answer {seq}"))(e)),
        }
        rtts.push(t0.elapsed());
        let expected = seq.wrapping_mul(2);
        match <[u8; 8]>::try_from(answer.as_slice()) {
            Ok(b) if u64::from_le_bytes(b) == expected => {}
            Ok(b) => {
                return Err(PeerError::WrongAnswer {
                    seq,
                    expected,
                    got: u64::from_le_bytes(b).to_string(),
                });
            }
            Err(_) => {
                return Err(PeerError::WrongAnswer {
                    seq,
                    expected,
                    got: format!("a message of {} bytes", answer.len()),
                });
            }
        }
        ch.beat();
    }
    Ok(PingStats::from_samples(channel, start.elapsed(), rtts))
}

/// How `echo` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoOptions {
    /// Stop after answering this many messages (over all regions).
    pub count: Option<u64>,
    /// Reclaim a claimed channel whose heartbeat has not moved for this long
    /// (its owner is taken for dead).
    pub stale_after: Duration,
    /// How to wait when idle.
    pub wait: WaitStrategy,
}

impl Default for EchoOptions {
    fn default() -> Self {
        EchoOptions {
            count: None,
            stale_after: Duration::from_secs(30),
            wait: WaitStrategy::BALANCED,
        }
    }
}

/// What `echo` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoStats {
    /// Messages answered, over all regions.
    pub messages: u64,
    /// Messages answered per region, in the order given.
    pub per_region: Vec<u64>,
    /// Guest channels served (a channel claimed again counts again).
    pub channels: u64,
    /// Channels reclaimed from dead or misbehaving owners.
    pub reclaimed: u64,
}

impl fmt::Display for EchoStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "echo: answered {} messages on {} channel(s) of {} region(s) (per region: {:?}); reclaimed {}",
            self.messages,
            self.channels,
            self.per_region.len(),
            self.per_region,
            self.reclaimed
        )
    }
}

/// Holds the worker lease of some regions; gives it up when dropped.
struct Leases<'a> {
    regions: &'a [Region],
    pid: u32,
}

impl<'a> Leases<'a> {
    fn acquire(regions: &'a [Region]) -> Result<Leases<'a>, PeerError> {
        let pid = std::process::id();
        let mut held = Leases {
            regions: &regions[..0],
            pid,
        };
        for (i, region) in regions.iter().enumerate() {
            region.acquire_worker(pid)?;
            held.regions = &regions[..=i];
        }
        Ok(held)
    }
}

impl Drop for Leases<'_> {
    fn drop(&mut self) {
        for region in self.regions {
            region.release_worker(self.pid);
        }
    }
}

/// How often housekeeping runs: worker heartbeats, stale-channel checks and
/// the stop callback.
const HOUSEKEEPING: Duration = Duration::from_millis(10);
const STALE_CHECK: Duration = Duration::from_secs(1);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Host side: takes the worker lease of every region, then serves their
/// channels as guests claim them, answering each message with its number
/// doubled. Returns after `opts.count` messages or once `stop` returns true
/// (it is called about every 10 ms).
pub fn echo(
    regions: &[Region],
    opts: &EchoOptions,
    mut stop: impl FnMut() -> bool,
) -> Result<EchoStats, PeerError> {
    let _leases = Leases::acquire(regions)?;
    let mut endpoints: Vec<Vec<Option<WorkerChannel>>> = regions
        .iter()
        .map(|r| (0..r.channel_count()).map(|_| None).collect())
        .collect();
    let mut trackers: Vec<LivenessTracker> =
        regions.iter().map(|_| LivenessTracker::new()).collect();
    let mut stats = EchoStats {
        messages: 0,
        per_region: vec![0; regions.len()],
        channels: 0,
        reclaimed: 0,
    };
    for r in regions {
        r.beat_worker();
        tracing::info!(region = %r.path().display(), channels = r.channel_count(), "serving");
    }
    let mut msg = Vec::with_capacity(64);
    let mut backoff = transport::Backoff::new(&opts.wait);
    let mut last_housekeeping = Instant::now();
    let mut last_stale_check = Instant::now();
    loop {
        let mut busy = false;
        for (ri, region) in regions.iter().enumerate() {
            for (index, slot) in (0u32..).zip(endpoints[ri].iter_mut()) {
                if slot.as_ref().is_some_and(|ep| !ep.is_current()) {
                    tracing::info!(region = %region.path().display(), index, "channel released");
                    *slot = None;
                }
                if slot.is_none() {
                    let Some(ep) = region.attach(index)? else {
                        continue;
                    };
                    let owner = region.status(index)?.owner_pid;
                    tracing::info!(
                        region = %region.path().display(),
                        index,
                        generation = ep.generation(),
                        owner_pid = owner,
                        "channel claimed"
                    );
                    stats.channels += 1;
                    *slot = Some(ep);
                }
                let ep = slot.as_mut().expect("attached above");
                match serve_one(ep, &mut msg) {
                    Ok(false) => {}
                    Ok(true) => {
                        busy = true;
                        stats.messages += 1;
                        stats.per_region[ri] += 1;
                        if opts.count.is_some_and(|n| stats.messages >= n) {
                            return Ok(stats);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(
                            region = %region.path().display(),
                            index,
                            "reclaiming the channel: {e}"
                        );
                        if region.reclaim(index, ep.generation())? {
                            stats.reclaimed += 1;
                        }
                        *slot = None;
                    }
                }
            }
        }
        if busy {
            backoff = transport::Backoff::new(&opts.wait);
            continue;
        }
        let now = Instant::now();
        if now.duration_since(last_housekeeping) >= HOUSEKEEPING {
            last_housekeeping = now;
            regions.iter().for_each(Region::beat_worker);
            if stop() {
                return Ok(stats);
            }
        }
        if now.duration_since(last_stale_check) >= STALE_CHECK {
            last_stale_check = now;
            for (region, tracker) in regions.iter().zip(&mut trackers) {
                for (index, generation) in tracker.stale(region, opts.stale_after) {
                    if region.reclaim(index, generation)? {
                        tracing::warn!(
                            region = %region.path().display(),
                            index,
                            "reclaimed a channel whose owner stopped its heartbeat"
                        );
                        stats.reclaimed += 1;
                    }
                }
            }
        }
        let _ = backoff.snooze(None);
    }
}

/// Answers one message of `ep` if one is waiting; `Ok(false)` when none is.
fn serve_one(ep: &mut WorkerChannel, msg: &mut Vec<u8>) -> Result<bool, RingError> {
    if !ep.rx.try_recv(msg)? {
        return Ok(false);
    }
    let Ok(bytes) = <[u8; 8]>::try_from(msg.as_slice()) else {
        return Err(RingError::Corrupt("echo expects 8-byte messages"));
    };
    let answer = u64::from_le_bytes(bytes).wrapping_mul(2);
    ep.tx.send(
        &answer.to_le_bytes(),
        &WaitStrategy::BALANCED,
        Some(SEND_TIMEOUT),
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use transport::RegionConfig;

    fn region(dir: &tempfile::TempDir, name: &str) -> Region {
        Region::create(
            &dir.path().join(name),
            &RegionConfig {
                channels: 2,
                cmd_ring_size: 4096,
                resp_ring_size: 4096,
                arena_size: 4096,
                heap_size: 0,
            },
        )
        .unwrap()
    }

    #[test]
    fn stats_percentiles() {
        let rtts = (1..=100).map(Duration::from_micros).collect();
        let s = PingStats::from_samples(0, Duration::from_millis(5), rtts);
        assert_eq!(s.min, Duration::from_micros(1));
        assert_eq!(s.p50, Duration::from_micros(50));
        assert_eq!(s.p99, Duration::from_micros(99));
        assert_eq!(s.max, Duration::from_micros(100));
        assert_eq!(s.mean, Duration::from_nanos(50_500));
        assert_eq!(
            s.to_string(),
            "ping: 100 round trips on channel 0 in 0.005s: min 1.0us p50 50.0us p99 99.0us max 100.0us mean 50.5us"
        );
    }

    #[test]
    fn ping_and_echo_in_threads_over_two_regions() {
        let dir = tempfile::tempdir().unwrap();
        let regions = vec![region(&dir, "a"), region(&dir, "b")];
        let guests: Vec<Region> = regions
            .iter()
            .map(|r| Region::open(r.path()).unwrap())
            .collect();
        let server = std::thread::spawn(move || {
            echo(
                &regions,
                &EchoOptions {
                    count: Some(300),
                    ..EchoOptions::default()
                },
                || false,
            )
        });
        let opts = PingOptions {
            count: 100,
            ..PingOptions::default()
        };
        let a = ping(&guests[0], &opts).unwrap();
        let b = ping(&guests[1], &opts).unwrap();
        // The first channel was released and is claimed again.
        let c = ping(&guests[1], &opts).unwrap();
        assert_eq!((a.count, b.count, c.count), (100, 100, 100));
        let stats = server.join().unwrap().unwrap();
        assert_eq!(stats.messages, 300);
        assert_eq!(stats.per_region, [100, 200]);
        assert_eq!(stats.channels, 3);
        assert_eq!(guests[0].worker_pid(), 0, "lease released");
    }

    #[test]
    fn ping_without_echo_times_out_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let r = region(&dir, "a");
        let e = ping(
            &r,
            &PingOptions {
                count: 1,
                timeout: Duration::from_millis(50),
                ..PingOptions::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, PeerError::NoAnswer { seq: 1, .. }), "{e}");
        assert!(e.to_string().contains("ivshmem-setup echo"), "{e}");
        assert!(
            e.to_string().contains("worker lease in the region: none"),
            "{e}"
        );
    }

    #[test]
    fn echo_stops_on_request_and_reclaims_bad_channels() {
        let dir = tempfile::tempdir().unwrap();
        let regions = vec![region(&dir, "a")];
        let guest_region = Region::open(regions[0].path()).unwrap();
        let mut guest = guest_region.claim().unwrap();
        guest
            .tx
            .send(b"not eight bytes", &WaitStrategy::BALANCED, None)
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let server = std::thread::spawn(move || {
            echo(&regions, &EchoOptions::default(), || {
                stop2.load(Ordering::Relaxed)
            })
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while guest.is_current() {
            assert!(Instant::now() < deadline, "channel never reclaimed");
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::Relaxed);
        let stats = server.join().unwrap().unwrap();
        assert_eq!((stats.messages, stats.reclaimed), (0, 1));
    }

    #[test]
    fn a_second_echo_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = region(&dir, "a");
        r.acquire_worker(1).unwrap();
        let e = echo(&[r], &EchoOptions::default(), || true).unwrap_err();
        assert!(
            e.to_string().contains("already served by worker pid 1"),
            "{e}"
        );
    }
}
