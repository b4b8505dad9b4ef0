//! Channels: claiming, releasing and reclaiming, and the endpoints each side
//! gets.
//!
//! A channel's state word holds `generation << 32 | state`. A guest claims a
//! free channel by compare-and-swap, keeping the generation; releasing (by
//! the owner) or reclaiming (by the worker, for a dead owner) resets the
//! rings while the state says `CLOSING`, then publishes `FREE` with the next
//! generation. Every endpoint remembers the generation it was made for, so a
//! stale owner cannot release a channel that someone else has claimed since,
//! and the worker notices when the channel it serves changed hands.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::arena::Arena;
use crate::layout::{self, ChannelLayout, RegionHeader};
use crate::ring::{self, Consumer, Owner, Producer, RingLayout};
use crate::shm::Shm;

const FREE: u32 = 0;
const CLAIMED: u32 = 1;
const CLOSING: u32 = 2;

fn word(generation: u32, state: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(state)
}

/// Ownership state of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    /// Nobody holds it.
    Free,
    /// A guest holds it.
    Claimed,
    /// Being released or reclaimed.
    Closing,
    /// The state word holds a value no honest party writes.
    Invalid(u32),
}

/// A snapshot of a channel's shared control words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelStatus {
    /// Channel index.
    pub index: u32,
    /// Ownership state.
    pub state: ChannelState,
    /// Generation of the current (or next) ownership.
    pub generation: u32,
    /// The owner's pid as it reported it (a guest pid inside a VM).
    pub owner_pid: u32,
    /// The owner's heartbeat counter.
    pub heartbeat: u64,
}

pub(crate) fn rings(l: &ChannelLayout) -> (RingLayout, RingLayout) {
    let cmd = RingLayout {
        head: l.base + layout::CH_CMD_HEAD,
        tail: l.base + layout::CH_CMD_TAIL,
        data: l.cmd_data,
        size: l.cmd_size,
        bell: Some(l.base + layout::CH_CMD_BELL),
    };
    let resp = RingLayout {
        head: l.base + layout::CH_RESP_HEAD,
        tail: l.base + layout::CH_RESP_TAIL,
        data: l.resp_data,
        size: l.resp_size,
        bell: Some(l.base + layout::CH_RESP_BELL),
    };
    (cmd, resp)
}

pub(crate) fn status(shm: &Shm, header: &RegionHeader, index: u32) -> ChannelStatus {
    let l = header.channel(index);
    let w = shm
        .atomic_u64(l.base + layout::CH_STATE)
        .load(Ordering::Acquire);
    let state = match w as u32 {
        FREE => ChannelState::Free,
        CLAIMED => ChannelState::Claimed,
        CLOSING => ChannelState::Closing,
        other => ChannelState::Invalid(other),
    };
    ChannelStatus {
        index,
        state,
        generation: (w >> 32) as u32,
        owner_pid: shm
            .atomic_u64(l.base + layout::CH_OWNER_PID)
            .load(Ordering::Relaxed) as u32,
        heartbeat: shm
            .atomic_u64(l.base + layout::CH_HEARTBEAT)
            .load(Ordering::Acquire),
    }
}

/// Frees a channel owned under `generation`: resets its rings, then makes it
/// claimable under the next generation. Returns false when it was not owned
/// under that generation (someone else released it first).
pub(crate) fn free(shm: &Shm, header: &RegionHeader, index: u32, generation: u32) -> bool {
    let l = header.channel(index);
    let state = shm.atomic_u64(l.base + layout::CH_STATE);
    if state
        .compare_exchange(
            word(generation, CLAIMED),
            word(generation, CLOSING),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        return false;
    }
    let (cmd, resp) = rings(&l);
    // Whoever sleeps on the channel's bells wakes and sees it change hands.
    for bell in [layout::CH_CMD_BELL, layout::CH_RESP_BELL] {
        crate::bell::Bell::new(shm, l.base + bell).ring();
    }
    ring::reset(shm, &cmd);
    ring::reset(shm, &resp);
    shm.atomic_u64(l.base + layout::CH_OWNER_PID)
        .store(0, Ordering::Relaxed);
    shm.atomic_u64(l.base + layout::CH_HEARTBEAT)
        .store(0, Ordering::Relaxed);
    for bell in [
        layout::CH_CMD_BELL,
        layout::CH_RESP_BELL,
        layout::CH_GUEST_RINGS,
    ] {
        shm.atomic_u32(l.base + bell).store(0, Ordering::Relaxed);
    }
    state.store(word(generation.wrapping_add(1), FREE), Ordering::Release);
    true
}

/// Whether a process with this pid exists on this host.
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

/// The guest's end of a claimed channel: it sends commands, receives
/// responses and fills the arena. Dropping it releases the channel.
#[derive(Debug)]
pub struct GuestChannel {
    shm: Shm,
    header: RegionHeader,
    index: u32,
    generation: u32,
    /// Commands to the worker.
    pub tx: Producer,
    /// Responses from the worker.
    pub rx: Consumer,
    /// The channel's data arena.
    pub arena: Arena,
    /// The region's buffer heap (shared by all channels; may be empty).
    pub heap: Arena,
}

impl GuestChannel {
    pub(crate) fn try_claim(
        shm: &Shm,
        header: &RegionHeader,
        index: u32,
        doorbell: Option<crate::doorbell::Doorbell>,
    ) -> Option<GuestChannel> {
        let l = header.channel(index);
        let state = shm.atomic_u64(l.base + layout::CH_STATE);
        let cur = state.load(Ordering::Acquire);
        if cur as u32 != FREE {
            return None;
        }
        let generation = (cur >> 32) as u32;
        state
            .compare_exchange(
                cur,
                word(generation, CLAIMED),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .ok()?;
        shm.atomic_u64(l.base + layout::CH_OWNER_PID)
            .store(u64::from(std::process::id()), Ordering::Relaxed);
        shm.atomic_u64(l.base + layout::CH_HEARTBEAT)
            .store(1, Ordering::Release);
        // Sharing the worker's kernel, this guest's futex wakes reach the
        // worker; in a VM, its ivshmem doorbell does (the worker turns it
        // into futex wakes). It says which, and the worker may then sleep
        // on the command bell.
        let same_kernel = crate::region::same_kernel(shm);
        let doorbell = doorbell.filter(|_| !same_kernel);
        let guest_rings = match (same_kernel, &doorbell) {
            (true, _) => 1,
            (false, Some(_)) => 2,
            (false, None) => 0,
        };
        shm.atomic_u32(l.base + layout::CH_GUEST_RINGS)
            .store(guest_rings, Ordering::Release);
        // The worker's region thread may sleep: it attaches at once.
        if same_kernel {
            crate::bell::Bell::new(shm, layout::REGION_BELL).ring();
        } else if let Some(d) = &doorbell {
            d.ring();
        }
        let (cmd, resp) = rings(&l);
        let owner = Owner::new(shm, l.base + layout::CH_STATE, word(generation, CLAIMED));
        let mut tx = Producer::new(shm.clone(), cmd, Some(owner.clone()));
        if let Some(d) = doorbell {
            tx.ring_through(shm, d);
        }
        Some(GuestChannel {
            tx,
            rx: Consumer::new(shm.clone(), resp, Some(owner)),
            arena: Arena::new(shm.clone(), l.arena, l.arena_size),
            heap: crate::region::heap_of(shm, header),
            shm: shm.clone(),
            header: *header,
            index,
            generation,
        })
    }

    /// The channel's index in its region.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The generation this ownership runs under.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// A handle that advances this channel's heartbeat from another thread,
    /// without access to the rings (a thread blocked in a long call must not
    /// stop the heartbeat).
    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            shm: self.shm.clone(),
            offset: self.header.channel(self.index).base + layout::CH_HEARTBEAT,
        }
    }

    /// A handle that tells, from any thread and without access to the
    /// rings, whether this endpoint still owns the channel.
    pub fn ownership(&self) -> Ownership {
        Ownership {
            shm: self.shm.clone(),
            offset: self.header.channel(self.index).base + layout::CH_STATE,
            expected: word(self.generation, CLAIMED),
        }
    }

    /// Advances the guest heartbeat, showing the worker that the owner lives.
    pub fn beat(&self) {
        self.heartbeat().beat();
    }

    /// Whether this endpoint still owns the channel (the worker may have
    /// reclaimed it, taking it for dead).
    pub fn is_current(&self) -> bool {
        let s = status(&self.shm, &self.header, self.index);
        s.state == ChannelState::Claimed && s.generation == self.generation
    }

    /// Gives the channel back now (as dropping does). Idempotent; after it,
    /// [`GuestChannel::is_current`] is false and the worker no longer serves
    /// this endpoint.
    pub fn release(&self) {
        free(&self.shm, &self.header, self.index, self.generation);
    }

    /// Whether this guest may sleep on the response ring's bell: it
    /// shares the worker's kernel, whose futex wakes then reach it.
    pub fn can_sleep(&self) -> bool {
        crate::region::same_kernel(&self.shm)
    }

    /// The region's worker heartbeat (to notice a dead worker).
    pub fn worker_heartbeat(&self) -> u64 {
        self.shm
            .atomic_u64(layout::WORKER_HEARTBEAT)
            .load(Ordering::Acquire)
    }
}

impl Drop for GuestChannel {
    fn drop(&mut self) {
        free(&self.shm, &self.header, self.index, self.generation);
    }
}

/// Whether a channel endpoint's ownership still lasts (see
/// [`GuestChannel::ownership`]).
#[derive(Debug, Clone)]
pub struct Ownership {
    shm: Shm,
    offset: usize,
    expected: u64,
}

impl Ownership {
    /// Whether the channel is still claimed under the endpoint's generation
    /// (not released, and not reclaimed by the worker).
    pub fn holds(&self) -> bool {
        self.shm.atomic_u64(self.offset).load(Ordering::Acquire) == self.expected
    }
}

/// Advances a guest channel's heartbeat (see [`GuestChannel::heartbeat`]).
#[derive(Debug, Clone)]
pub struct Heartbeat {
    shm: Shm,
    offset: usize,
}

impl Heartbeat {
    /// One beat.
    pub fn beat(&self) {
        self.shm
            .atomic_u64(self.offset)
            .fetch_add(1, Ordering::Release);
    }
}

/// The worker's end of a claimed channel: it receives commands, sends
/// responses and reads the arena. It does not own the channel.
#[derive(Debug)]
pub struct WorkerChannel {
    shm: Shm,
    header: RegionHeader,
    index: u32,
    generation: u32,
    /// Commands from the guest (untrusted).
    pub rx: Consumer,
    /// Responses to the guest.
    pub tx: Producer,
    /// The channel's data arena (untrusted contents).
    pub arena: Arena,
    /// The region's buffer heap (shared by all channels; may be empty).
    pub heap: Arena,
}

impl WorkerChannel {
    pub(crate) fn attach(shm: &Shm, header: &RegionHeader, index: u32) -> Option<WorkerChannel> {
        let s = status(shm, header, index);
        if s.state != ChannelState::Claimed {
            return None;
        }
        let l = header.channel(index);
        let (cmd, resp) = rings(&l);
        let owner = Owner::new(shm, l.base + layout::CH_STATE, word(s.generation, CLAIMED));
        Some(WorkerChannel {
            rx: Consumer::new(shm.clone(), cmd, Some(owner.clone())),
            tx: Producer::new(shm.clone(), resp, Some(owner)),
            arena: Arena::new(shm.clone(), l.arena, l.arena_size),
            heap: crate::region::heap_of(shm, header),
            shm: shm.clone(),
            header: *header,
            index,
            generation: s.generation,
        })
    }

    /// The channel's index in its region.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The ownership generation this endpoint serves.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Whether the guest rings the command ring's bell (it shares this
    /// worker's kernel, or rings through its VM's ivshmem doorbell, which
    /// the worker turns into a futex wake): only then may the worker sleep
    /// on it.
    pub fn guest_rings(&self) -> bool {
        let l = self.header.channel(self.index);
        self.shm
            .atomic_u32(l.base + layout::CH_GUEST_RINGS)
            .load(Ordering::Acquire)
            != 0
    }

    /// Whether the guest that this endpoint was made for still holds the channel.
    pub fn is_current(&self) -> bool {
        let s = status(&self.shm, &self.header, self.index);
        s.state == ChannelState::Claimed && s.generation == self.generation
    }
}

/// Worker-side detection of dead owners: a claimed channel whose heartbeat
/// has not moved for longer than a timeout is stale.
#[derive(Debug, Default)]
pub struct LivenessTracker {
    seen: HashMap<u32, (u32, u64, Instant)>,
}

impl LivenessTracker {
    /// A tracker with no history.
    pub fn new() -> LivenessTracker {
        LivenessTracker::default()
    }

    /// Looks at every channel of `region` and returns `(index, generation)` of
    /// those claimed channels whose heartbeat has been still for `timeout`.
    pub fn stale(&mut self, region: &crate::Region, timeout: Duration) -> Vec<(u32, u32)> {
        let now = Instant::now();
        let mut out = Vec::new();
        for index in 0..region.channel_count() {
            let s = region.status(index).expect("index in range");
            if s.state != ChannelState::Claimed {
                self.seen.remove(&index);
                continue;
            }
            let entry = self
                .seen
                .entry(index)
                .or_insert((s.generation, s.heartbeat, now));
            if (entry.0, entry.1) != (s.generation, s.heartbeat) {
                *entry = (s.generation, s.heartbeat, now);
            } else if now.duration_since(entry.2) >= timeout {
                out.push((index, s.generation));
            }
        }
        out
    }
}
