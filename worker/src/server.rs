//! Serving regions: one poller thread per region (a VM), so that one VM's
//! blocking call never stalls another VM. Each poller attaches to channels
//! as guests claim them, executes their commands in order, and frees
//! everything a guest owned when its channel is released or goes stale.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use remoting::worker::{Dispatcher, HandleTable, Session, serve_pending};
use transport::{LivenessTracker, Region, RegionConfig, WaitStrategy, WorkerChannel};

/// How the worker serves its regions.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Cores to pin poller threads to, round-robin (empty: no pinning).
    pub cores: Vec<usize>,
    /// A claimed channel whose heartbeat stops for this long is reclaimed.
    pub stale_after: Duration,
    /// How pollers wait when every channel is idle.
    pub wait: WaitStrategy,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            cores: Vec::new(),
            stale_after: Duration::from_secs(5),
            wait: WaitStrategy::BALANCED,
        }
    }
}

/// Opens the region at `path`, creating it with `config` when the file does
/// not exist, and takes its worker lease.
pub fn open_region(path: &Path, config: &RegionConfig) -> anyhow::Result<Region> {
    let region = if path.exists() {
        Region::open(path)?
    } else {
        // ivshmem BARs are powers of two: size the file so that QEMU can
        // map it as it is.
        let size = config.total_size().next_power_of_two();
        tracing::info!(path = %path.display(), size, "creating region");
        Region::create(path, config)?;
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(size))
            .with_context(|| format!("sizing {}", path.display()))?;
        Region::open(path)?
    };
    region
        .acquire_worker(std::process::id())
        .with_context(|| format!("{}: cannot serve this region", path.display()))?;
    Ok(region)
}

struct Live {
    ch: WorkerChannel,
    session: Session,
}

/// Serves `region` until `stop` is set. Runs on the calling thread.
pub fn serve_region(
    region: &Region,
    dispatcher: &dyn Dispatcher,
    opts: &ServeOptions,
    stop: &AtomicBool,
) {
    let handles = Arc::new(Mutex::new(HandleTable::new()));
    let mut live: Vec<Option<Live>> = (0..region.channel_count()).map(|_| None).collect();
    let mut tracker = LivenessTracker::new();
    let mut buf = Vec::with_capacity(4096);
    let mut last_scan = Instant::now() - Duration::from_secs(1);
    let mut idle = transport::Backoff::new(&opts.wait);
    let mut polls = 0u32;
    while !stop.load(Ordering::Relaxed) {
        polls = polls.wrapping_add(1);
        // Attach new guests, notice departed ones: not on every poll, and
        // without reading the clock on every poll either.
        let now = if idle.is_sleeping() || polls.is_multiple_of(1024) {
            Instant::now()
        } else {
            last_scan
        };
        if idle.is_sleeping() || now.duration_since(last_scan) > Duration::from_millis(20) {
            last_scan = now;
            for (i, slot) in live.iter_mut().enumerate() {
                let i = i as u32;
                if let Some(l) = slot
                    && !l.ch.is_current()
                {
                    cleanup(&handles, dispatcher, i, l, "released its channel");
                    *slot = None;
                }
                if slot.is_none()
                    && let Ok(Some(ch)) = region.attach(i)
                {
                    tracing::info!(region = %region.path().display(), channel = i, generation = ch.generation(), "guest attached");
                    *slot = Some(Live {
                        ch,
                        session: Session::default(),
                    });
                }
            }
            for (i, generation) in tracker.stale(region, opts.stale_after) {
                if let Some(l) = live[i as usize].take() {
                    cleanup(&handles, dispatcher, i, &l, "stopped beating");
                }
                let _ = region.reclaim(i, generation);
            }
        }
        let mut served = 0;
        for (i, slot) in live.iter_mut().enumerate() {
            let Some(l) = slot else { continue };
            match serve_pending(
                &mut l.ch,
                &mut l.session,
                &handles,
                dispatcher,
                &mut buf,
                &opts.wait,
            ) {
                Ok(n) => served += n,
                Err(e) => {
                    // Corruption or departure: this guest only.
                    if l.ch.is_current() {
                        tracing::warn!(channel = i, "dropping channel: {e}");
                        let generation = l.ch.generation();
                        cleanup(&handles, dispatcher, i as u32, l, "corrupted its channel");
                        let _ = region.reclaim(i as u32, generation);
                    } else {
                        cleanup(&handles, dispatcher, i as u32, l, "released its channel");
                    }
                    *slot = None;
                }
            }
        }
        if served > 0 {
            idle = transport::Backoff::new(&opts.wait);
        } else {
            let _ = idle.snooze(None);
        }
    }
}

fn cleanup(
    handles: &Mutex<HandleTable>,
    dispatcher: &dyn Dispatcher,
    channel: u32,
    l: &Live,
    why: &str,
) {
    let owned = handles
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain_owner(channel);
    tracing::info!(
        channel,
        calls = l.session.calls,
        rejected = l.session.rejected,
        freed = owned.len(),
        "guest {why}"
    );
    for (kind, host, refs) in owned {
        for _ in 0..refs {
            dispatcher.destroy(kind, host);
        }
    }
}

/// Serves every region in `paths` with one pinned thread each until `stop`.
pub fn serve(
    paths: &[PathBuf],
    config: &RegionConfig,
    dispatcher: &dyn Dispatcher,
    opts: &ServeOptions,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let regions: Vec<Region> = paths
        .iter()
        .map(|p| open_region(p, config))
        .collect::<anyhow::Result<_>>()?;
    std::thread::scope(|s| {
        // The heartbeat has its own thread: a poller busy in a long call
        // (a kernel that runs for minutes) is not a dead worker.
        let beating = &regions;
        s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for r in beating {
                    r.beat_worker();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        for (i, region) in regions.iter().enumerate() {
            let core = (!opts.cores.is_empty()).then(|| opts.cores[i % opts.cores.len()]);
            s.spawn(move || {
                if let Some(c) = core {
                    pin(c);
                }
                tracing::info!(region = %region.path().display(), core = ?core, "serving");
                serve_region(region, dispatcher, opts, stop);
                region.release_worker(std::process::id());
            });
        }
    });
    Ok(())
}

fn pin(core: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(core).is_ok()
        && let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
    {
        tracing::warn!(core, "cannot pin poller: {e}");
    }
}
