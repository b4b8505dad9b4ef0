//! Serving regions: per region (a VM) a supervisor thread that attaches to
//! channels as guests claim them and gives each its own serving thread, so
//! that a blocking call stalls only the guest thread that made it; the
//! supervisor also notices dead guests and frees everything a guest process
//! owned when its last channel ends. One more thread beats every region's
//! heartbeat.
//!
//! One worker serves several APIs (one [`Backend`] each), on the same region
//! and on different ones: a channel's first message names its API and the
//! revision of its specification, and the channel is served by that API's
//! dispatcher, or refused. Each API has its own handle table per region, so
//! a handle of one API never translates in another's call.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use remoting::heap::Heap;
use remoting::worker::{
    Admission, AdmitAll, Caller, Dispatcher, HandleTable, Session, serve_pending,
};
use remoting::{ApiId, accept_hello};
use transport::{LivenessTracker, Region, RegionConfig, WaitStrategy, WorkerChannel};

use crate::{Backend, InFlight};

/// Longest sleep of an idle channel's thread on its bell (its guest rings
/// when it sends, and a release rings too): how soon it sees the worker
/// stop.
const CHANNEL_IDLE_SLEEP: Duration = Duration::from_millis(500);

/// Longest sleep of a region's thread when nothing changes: how soon it
/// attaches a channel that a guest in a VM (which cannot ring) claims, and
/// looks for dead guests.
const REGION_IDLE_SLEEP: Duration = Duration::from_millis(100);
/// How often the worker's heartbeat advances in each region (guests take
/// a worker whose heartbeat stands still for seconds for gone).
const HEARTBEAT_PERIOD: Duration = Duration::from_millis(250);

/// No API chosen yet on a channel (no hello accepted).
const NO_API: usize = usize::MAX;

/// How the worker serves its regions.
#[derive(Clone)]
pub struct ServeOptions {
    /// Cores to pin poller threads to, round-robin (empty: no pinning).
    pub cores: Vec<usize>,
    /// A claimed channel whose heartbeat stops for this long is reclaimed.
    pub stale_after: Duration,
    /// How pollers wait when every channel is idle.
    pub wait: WaitStrategy,
    /// Asked before every call that consumes a resource (`consumes_rc`):
    /// the scheduling hook. The default admits everything.
    pub admission: Arc<dyn Admission>,
    /// Where the calls being executed are recorded for a supervisor (an
    /// executor of an isolation group has one).
    pub in_flight: Option<InFlight>,
    /// The pid the regions' worker lease is held under (default: this
    /// process; an executor uses its supervisor's, which holds the lease
    /// across executor restarts).
    pub lease_pid: Option<u32>,
    /// The VMs' names by region (a region not named is called after its
    /// file), for logs and the admission policy.
    pub vm_names: std::collections::HashMap<PathBuf, String>,
    /// Where each VM's attached channels and processes are recorded (the
    /// ledger the policy and the metrics read), if anywhere.
    pub ledger: Option<crate::Ledger>,
    /// Whether an idle channel's thread sleeps until its guest rings (when
    /// the guest can: it shares this kernel), instead of polling with
    /// back-off (`--wait adaptive`, the default; `--wait poll`: false).
    pub notify: bool,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("cores", &self.cores)
            .field("stale_after", &self.stale_after)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            cores: Vec::new(),
            stale_after: Duration::from_secs(5),
            wait: WaitStrategy::BALANCED,
            admission: Arc::new(AdmitAll),
            in_flight: None,
            lease_pid: None,
            vm_names: std::collections::HashMap::new(),
            ledger: None,
            notify: true,
        }
    }
}

/// Opens the region at `path`, creating it with `config` when the file does
/// not exist, and takes its worker lease. A created region's file is a
/// power of two (ivshmem BARs are, so QEMU can map it as it is); when
/// `config` asks for a heap, the heap grows to fill the file.
pub fn open_region(path: &Path, config: &RegionConfig) -> anyhow::Result<Region> {
    open_region_as(path, config, std::process::id())
}

/// [`open_region`], taking the worker lease for `pid`.
pub fn open_region_as(path: &Path, config: &RegionConfig, pid: u32) -> anyhow::Result<Region> {
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
        .acquire_worker(pid)
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
    /// The index of the channel's API among the backends, once its hello
    /// was accepted ([`NO_API`] before).
    api: Arc<AtomicUsize>,
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
    backends: &[&dyn Backend],
    opts: &ServeOptions,
    stop: &AtomicBool,
) {
    serve_region_at(region, 0, backends, opts, stop);
}

/// [`serve_region`] for the region at `position` among those served (its
/// slots in [`ServeOptions::in_flight`]).
fn serve_region_at(
    region: &Region,
    position: usize,
    backends: &[&dyn Backend],
    opts: &ServeOptions,
    stop: &AtomicBool,
) {
    let tables: Vec<Arc<Mutex<HandleTable>>> = backends
        .iter()
        .map(|_| Arc::new(Mutex::new(HandleTable::new())))
        .collect();
    // The region's buffer heap, shared by its channels.
    let heap = (region.heap().size() > 0).then(|| Arc::new(Heap::new(region.heap())));
    let mut tracker = LivenessTracker::new();
    let vm_slot = opts.ledger.as_ref().and_then(|l| {
        let name = opts
            .vm_names
            .get(region.path())
            .cloned()
            .unwrap_or_else(|| region_name(region));
        l.vm(&name)
    });
    std::thread::scope(|s| {
        let mut live: Vec<Option<Served<'_>>> = (0..region.channel_count()).map(|_| None).collect();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let mut changed = false;
            for idx in 0..live.len() {
                let i = idx as u32;
                if live[idx].as_ref().is_some_and(|t| t.thread.is_finished()) {
                    changed = true;
                    let t = live[idx].take().expect("checked");
                    let owner = t.owner;
                    let api = t.api.load(Ordering::Acquire);
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
                    // channels of that API (its threads share them).
                    let others = live
                        .iter()
                        .flatten()
                        .any(|o| o.owner == owner && o.api.load(Ordering::Acquire) == api);
                    match (tables.get(api), backends.get(api)) {
                        (Some(table), Some(b)) => {
                            cleanup(table, b.dispatcher(), i, &session, !others, why)
                        }
                        _ => tracing::info!(channel = i, owner, "guest {why} (no API chosen)"),
                    }
                }
                if stopping || live[idx].is_some() {
                    continue;
                }
                if let Ok(Some(ch)) = region.attach(i) {
                    changed = true;
                    let vm = opts
                        .vm_names
                        .get(region.path())
                        .cloned()
                        .unwrap_or_else(|| region_name(region));
                    tracing::info!(region = %region.path().display(), vm, channel = i, generation = ch.generation(), "guest attached");
                    let generation = ch.generation();
                    let owner = region.status(i).map_or(0, |st| st.owner_pid);
                    let tables = &tables;
                    let heap = heap.clone();
                    let api = Arc::new(AtomicUsize::new(NO_API));
                    let chosen = api.clone();
                    let region_bell = region.bell();
                    let thread = std::thread::Builder::new()
                        .name(format!("ava-ch{i}"))
                        .spawn_scoped(s, move || {
                            let served = Channel {
                                vm,
                                position,
                                owner,
                                tables,
                                heap,
                                backends,
                                api: &chosen,
                            };
                            let ended = serve_channel(ch, served, opts, stop);
                            region_bell.ring();
                            ended
                        })
                        .expect("spawn a channel thread");
                    live[idx] = Some(Served {
                        generation,
                        owner,
                        api,
                        thread,
                    });
                }
            }
            if let Some(slot) = &vm_slot {
                let owners: std::collections::BTreeSet<u32> =
                    live.iter().flatten().map(|t| t.owner).collect();
                let channels = live.iter().flatten().count() as u64;
                slot.set(crate::ledger::Field::Channels, channels);
                slot.set(crate::ledger::Field::Processes, owners.len() as u64);
            }
            if stopping && live.iter().all(Option::is_none) {
                break;
            }
            if !stopping {
                // A dead guest's channel is reclaimed; its thread then sees
                // the channel change hands and ends.
                for (i, generation) in tracker.stale(region, opts.stale_after) {
                    changed = true;
                    tracing::warn!(channel = i, "guest stopped beating");
                    let _ = region.reclaim(i, generation);
                }
            }
            if changed || stopping || !opts.notify {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            // Nothing changed: sleep on the region's bell, which a guest of
            // this kernel rings after claiming a channel and a channel's
            // thread rings when it ends; a guest in a VM cannot ring, so the
            // sleep is short enough to attach its channels soon.
            let bell = region.bell();
            bell.announce();
            let pending = live.iter().enumerate().any(|(i, t)| match t {
                Some(t) => t.thread.is_finished(),
                None => region
                    .status(i as u32)
                    .is_ok_and(|s| s.state == transport::ChannelState::Claimed),
            });
            if pending {
                bell.awake();
            } else {
                bell.sleep(REGION_IDLE_SLEEP);
            }
        }
    });
}

/// What a channel's thread serves it with.
struct Channel<'a> {
    /// The VM (its region's name), for logs and the admission policy.
    vm: String,
    /// The region's position among those served.
    position: usize,
    /// The guest process on the channel.
    owner: u32,
    /// The region's handle table of each API (indexed as `backends`).
    tables: &'a [Arc<Mutex<HandleTable>>],
    /// The region's buffer heap.
    heap: Option<Arc<Heap>>,
    /// The APIs this worker serves.
    backends: &'a [&'a dyn Backend],
    /// Where the channel's API is recorded once its hello is accepted.
    api: &'a AtomicUsize,
}

/// Empty polls after which a channel's call counts are flushed to the
/// ledger (the channel has gone idle).
const IDLE_FLUSH_POLLS: u32 = 1024;

/// Serves one channel until its guest leaves, breaks the protocol, or the
/// worker stops: first the hello that names its API, then its calls.
fn serve_channel(
    mut ch: WorkerChannel,
    c: Channel<'_>,
    opts: &ServeOptions,
    stop: &AtomicBool,
) -> (Session, Ending) {
    let mut session = Session::new(c.owner);
    session.heap = c.heap;
    session.admission = Some(opts.admission.clone());
    session.caller = Caller {
        vm_slot: opts.admission.tag(&c.vm),
        vm: c.vm,
        channel: ch.index(),
        owner: c.owner,
        api: "",
        api_index: 0,
    };
    let apis: Vec<ApiId> = c.backends.iter().map(|b| b.api()).collect();
    let mut buf = Vec::with_capacity(4096);
    // A guest that rings lets the channel sleep after a short spin.
    let strategy = |ch: &WorkerChannel| {
        if opts.notify && ch.guest_rings() {
            &WaitStrategy::DOORBELL
        } else {
            &opts.wait
        }
    };
    let mut idle = transport::Backoff::new(strategy(&ch));
    let mut polls = 0u32;
    // Empty polls since the last call served.
    let mut empty = 0u32;
    let mut chosen: Option<usize> = None;
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
            opts.admission.idle(&session.caller);
            return (session, ending);
        }
        let served = match chosen {
            Some(i) => serve_pending(
                &mut ch,
                &mut session,
                &c.tables[i],
                c.backends[i].dispatcher(),
                &mut buf,
                &opts.wait,
            ),
            None => hello(&mut ch, &apis, &mut buf, &opts.wait).map(|r| {
                if let Some(i) = r {
                    chosen = Some(i);
                    session.caller.api = apis[i].name;
                    session.caller.api_index = opts.admission.api_tag(apis[i].name);
                    session.in_flight = opts
                        .in_flight
                        .as_ref()
                        .and_then(|t| t.slot(c.position, ch.index(), i as u8));
                    c.api.store(i, Ordering::Release);
                }
                usize::from(r.is_some())
            }),
        };
        match served {
            Ok(0) => {
                // Counts reach the ledger once the channel has been idle a
                // while (about 1,000 empty polls, or its wait has come to
                // sleeping), not in the short gaps between a guest's calls.
                empty = empty.saturating_add(1);
                if empty == IDLE_FLUSH_POLLS || (empty < IDLE_FLUSH_POLLS && idle.is_sleeping()) {
                    opts.admission.idle(&session.caller);
                    empty = IDLE_FLUSH_POLLS;
                }
                // Idle past the spinning: sleep until the guest rings (it
                // does when it shares this kernel), waking now and then to
                // see whether the worker stops or the channel changed hands.
                if idle.is_sleeping()
                    && opts.notify
                    && ch.guest_rings()
                    && ch.rx.sleep(CHANNEL_IDLE_SLEEP)
                {
                    continue;
                }
                let _ = idle.snooze(None);
            }
            Ok(_) => {
                idle = transport::Backoff::new(strategy(&ch));
                empty = 0;
            }
            Err(e) => {
                opts.admission.idle(&session.caller);
                if ch.is_current() {
                    tracing::warn!(channel = ch.index(), "dropping channel: {e}");
                    return (session, Ending::Corrupt);
                }
                return (session, Ending::Released);
            }
        }
    }
}

/// Gives the memory freed with a guest's objects back to the system. The
/// allocator keeps freed memory for reuse, in one arena per thread that
/// allocated it; channel threads come and go with guests, so without this
/// a worker's resident memory creeps up over many guests' lifetimes.
/// Called once per guest process that leaves (rarely: it walks every
/// arena).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes an integer and only reorganises the
    // allocator's own free lists (under its locks); it is safe to call from
    // any thread at any time.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// A region's name for logs and policies: its file name.
fn region_name(region: &Region) -> String {
    name_of_region(region.path())
}

/// The name of a VM that is not named otherwise: its region's file name
/// (the path itself when it has none). Logs, groups and the admission
/// policy all call it so.
pub fn name_of_region(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Answers the messages waiting on a channel that has not named its API
/// yet: a hello that names a served API at its revision chooses it (its
/// index is returned); anything else is refused, with a reply that says
/// why, and logged.
fn hello(
    ch: &mut WorkerChannel,
    apis: &[ApiId],
    buf: &mut Vec<u8>,
    wait: &WaitStrategy,
) -> Result<Option<usize>, transport::RingError> {
    while ch.rx.try_recv(buf)? {
        let (chosen, reply) = accept_hello(buf, apis);
        ch.tx.send(&reply, wait, Some(Duration::from_secs(30)))?;
        match chosen {
            Ok(i) => {
                tracing::info!(channel = ch.index(), api = %apis[i], "guest named its API");
                return Ok(Some(i));
            }
            Err(why) => tracing::warn!(channel = ch.index(), "guest refused: {why}"),
        }
    }
    Ok(None)
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
    if last {
        dispatcher.guest_gone(&session.caller);
    }
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
    dispatcher.before_destroy(&owned);
    for (kind, host, refs) in owned {
        for _ in 0..refs {
            dispatcher.destroy(kind, host);
        }
    }
    if last {
        dispatcher.after_destroy();
        release_freed_memory();
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
    backends: &[&dyn Backend],
    opts: &ServeOptions,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    anyhow::ensure!(!backends.is_empty(), "no API to serve: no backend loaded");
    let lease = opts.lease_pid.unwrap_or_else(std::process::id);
    let regions: Vec<Region> = paths
        .iter()
        .map(|p| open_region_as(p, config, lease))
        .collect::<anyhow::Result<_>>()?;
    if let Some(t) = &opts.in_flight {
        let names: Vec<&str> = backends.iter().map(|b| b.api().name).collect();
        t.set_apis(&names);
    }
    std::thread::scope(|s| {
        // The heartbeat has its own thread: a poller busy in a long call
        // (a kernel that runs for minutes) is not a dead worker.
        let beating = &regions;
        s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for r in beating {
                    r.beat_worker();
                }
                std::thread::sleep(HEARTBEAT_PERIOD);
            }
        });
        for (i, region) in regions.iter().enumerate() {
            let core = (!opts.cores.is_empty()).then(|| opts.cores[i % opts.cores.len()]);
            s.spawn(move || {
                if let Some(c) = core {
                    pin(c);
                }
                tracing::info!(region = %region.path().display(), core = ?core, "serving");
                serve_region_at(region, i, backends, opts, stop);
                region.release_worker(lease);
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
