//! Serving regions: per region (a VM) a supervisor thread that attaches to
//! channels as guests claim them and gives each its own serving thread, so
//! that a blocking call stalls only the guest thread that made it; the
//! supervisor also notices dead guests and frees everything a guest process
//! owned when its last channel ends. One more thread beats every region's
//! heartbeat.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use remoting::heap::Heap;
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
/// not exist, and takes its worker lease. A created region's file is a
/// power of two (ivshmem BARs are, so QEMU can map it as it is); when
/// `config` asks for a heap, the heap grows to fill the file.
pub fn open_region(path: &Path, config: &RegionConfig) -> anyhow::Result<Region> {
    let region = if path.exists() {
        Region::open(path)?
    } else {
        let size = config.total_size().next_power_of_two();
        let mut config = *config;
        if config.heap_size > 0 {
            config.heap_size += size - config.total_size();
        }
        tracing::info!(path = %path.display(), size, heap = config.heap_size, "creating region");
        Region::create(path, &config)?;
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

/// Why a channel's thread stopped serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The guest released the channel (or it was reclaimed).
    Released,
    /// The ring was corrupt: the guest broke the protocol.
    Corrupt,
    /// The worker is stopping.
    Stopped,
}

/// A channel being served by its own thread.
struct Served<'s> {
    generation: u32,
    owner: u32,
    thread: std::thread::ScopedJoinHandle<'s, (Session, Ending)>,
}

/// Serves `region` until `stop` is set, on the calling thread and one
/// thread per claimed channel: a guest thread blocked in a call (waiting on
/// an event that another of its threads will set) never holds up the
/// guest's other channels. The calling thread attaches new channels,
/// notices dead guests, and frees what each guest owned once its thread
/// has finished.
pub fn serve_region(
    region: &Region,
    dispatcher: &dyn Dispatcher,
    opts: &ServeOptions,
    stop: &AtomicBool,
) {
    let handles = Arc::new(Mutex::new(HandleTable::new()));
    // The region's buffer heap, shared by its channels.
    let heap = (region.heap().size() > 0).then(|| Arc::new(Heap::new(region.heap())));
    let mut tracker = LivenessTracker::new();
    std::thread::scope(|s| {
        let mut live: Vec<Option<Served<'_>>> = (0..region.channel_count()).map(|_| None).collect();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            for idx in 0..live.len() {
                let i = idx as u32;
                if live[idx].as_ref().is_some_and(|t| t.thread.is_finished()) {
                    let t = live[idx].take().expect("checked");
                    let owner = t.owner;
                    let (session, ending) = t.thread.join().unwrap_or_else(|_| {
                        tracing::error!(channel = i, "channel thread panicked");
                        (Session::new(owner), Ending::Corrupt)
                    });
                    if ending == Ending::Corrupt {
                        let _ = region.reclaim(i, t.generation);
                    }
                    let why = match ending {
                        Ending::Released => "released its channel",
                        Ending::Corrupt => "corrupted its channel",
                        Ending::Stopped => "was disconnected: the worker stops",
                    };
                    // A process's objects live as long as any of its
                    // channels (its threads share them).
                    let others = live.iter().flatten().any(|o| o.owner == owner);
                    cleanup(&handles, dispatcher, i, &session, !others, why);
                }
                if stopping || live[idx].is_some() {
                    continue;
                }
                if let Ok(Some(ch)) = region.attach(i) {
                    tracing::info!(region = %region.path().display(), channel = i, generation = ch.generation(), "guest attached");
                    let generation = ch.generation();
                    let owner = region.status(i).map_or(0, |st| st.owner_pid);
                    let handles = &handles;
                    let heap = heap.clone();
                    let thread = std::thread::Builder::new()
                        .name(format!("ava-ch{i}"))
                        .spawn_scoped(s, move || {
                            serve_channel(ch, owner, handles, heap, dispatcher, opts, stop)
                        })
                        .expect("spawn a channel thread");
                    live[idx] = Some(Served {
                        generation,
                        owner,
                        thread,
                    });
                }
            }
            if stopping && live.iter().all(Option::is_none) {
                break;
            }
            if !stopping {
                // A dead guest's channel is reclaimed; its thread then sees
                // the channel change hands and ends.
                for (i, generation) in tracker.stale(region, opts.stale_after) {
                    tracing::warn!(channel = i, "guest stopped beating");
                    let _ = region.reclaim(i, generation);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
}

/// Serves one channel until its guest leaves, breaks the protocol, or the
/// worker stops.
fn serve_channel(
    mut ch: WorkerChannel,
    owner: u32,
    handles: &Arc<Mutex<HandleTable>>,
    heap: Option<Arc<Heap>>,
    dispatcher: &dyn Dispatcher,
    opts: &ServeOptions,
    stop: &AtomicBool,
) -> (Session, Ending) {
    let mut session = Session::new(owner);
    session.heap = heap;
    let mut buf = Vec::with_capacity(4096);
    let mut idle = transport::Backoff::new(&opts.wait);
    let mut polls = 0u32;
    loop {
        polls = polls.wrapping_add(1);
        // Checked now and then, not on every poll.
        if (idle.is_sleeping() || polls.is_multiple_of(4096))
            && (stop.load(Ordering::Relaxed) || !ch.is_current())
        {
            let ending = if ch.is_current() {
                Ending::Stopped
            } else {
                Ending::Released
            };
            return (session, ending);
        }
        match serve_pending(
            &mut ch,
            &mut session,
            handles,
            dispatcher,
            &mut buf,
            &opts.wait,
        ) {
            Ok(0) => {
                let _ = idle.snooze(None);
            }
            Ok(_) => idle = transport::Backoff::new(&opts.wait),
            Err(e) => {
                if ch.is_current() {
                    tracing::warn!(channel = ch.index(), "dropping channel: {e}");
                    return (session, Ending::Corrupt);
                }
                return (session, Ending::Released);
            }
        }
    }
}

/// Logs a channel's end and, if it was its owner's `last` channel, destroys
/// every object the owner created.
fn cleanup(
    handles: &Mutex<HandleTable>,
    dispatcher: &dyn Dispatcher,
    channel: u32,
    session: &Session,
    last: bool,
    why: &str,
) {
    let owner = session.owner;
    let owned = if last {
        handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain_owner(owner)
    } else {
        Vec::new()
    };
    tracing::info!(
        channel,
        owner,
        calls = session.calls,
        rejected = session.rejected,
        freed = owned.len(),
        "guest {why}"
    );
    for (kind, host, refs) in owned {
        for _ in 0..refs {
            dispatcher.destroy(kind, host);
        }
    }
    if last && let Some(heap) = &session.heap {
        tracing::info!(
            owner,
            in_use = heap.in_use(),
            size = heap.size(),
            "buffer heap after the guest's cleanup"
        );
    }
}

/// Serves every region in `paths` until `stop`: a supervisor per region,
/// pinned round-robin to `opts.cores` (its channel threads inherit the
/// pinning), and a heartbeat thread.
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
