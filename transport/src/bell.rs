//! Doorbells: how a consumer sleeps when its ring stays empty, and how its
//! producer wakes it, without costing the busy path a system call.
//!
//! Each ring of a channel has a bell word in the channel's control page.
//! A consumer that has polled for a while without a message **announces**
//! that it goes to sleep (stores [`SLEEPING`]), **re-checks** its ring, and
//! only then **sleeps** on the word (a futex wait that returns at once if
//! the word changed). A producer, after publishing a record, looks at the
//! word; only when it reads [`SLEEPING`] does it set it back to [`AWAKE`]
//! and wake the sleeper (one system call, on the edge from idle to busy).
//! Both sides order their store before their load with sequentially
//! consistent operations, so at least one of them sees the other: either
//! the consumer's re-check finds the record, or the producer finds the
//! announcement and wakes it. A wake-up is never lost, and a consumer never
//! sleeps past its timeout.
//!
//! The busy path pays for this with nothing but a load: the ordering the
//! two sides need is an *asymmetric* barrier. The producer orders its store
//! before its load with a compiler fence only; the consumer, on its rare
//! way to sleep, issues `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, which
//! makes every CPU running a registered process execute a full barrier, so
//! that either the producer's record is visible to the consumer's re-check
//! or the producer's load sees the announcement. Every process that
//! produces into a ring with a bell registers first. Where the kernel lacks
//! the command (or forbids it), producers fall back to a sequentially
//! consistent store and load (a full barrier on every message), so the
//! protocol stays correct; only a consumer whose process cannot issue the
//! barrier, facing a producer whose process could register, may miss a
//! wake-up, and then sleeps no longer than its timeout.
//!
//! A futex works between processes of one kernel: a guest process on the
//! host, or in a container. A guest in a VM shares the memory but not the
//! kernel; there the consumer keeps polling with back-off (see
//! `Region::same_kernel`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::shm::Shm;

/// The bell word when the consumer is polling (or busy).
pub const AWAKE: u32 = 0;
/// The bell word when the consumer sleeps, or is about to.
pub const SLEEPING: u32 = 1;
/// The bell word when a producer in a VM found the consumer sleeping and
/// rang its ivshmem doorbell: the worker's doorbell thread wakes the
/// sleeper ([`Bell::wake_rung`]), which cannot happen from the VM.
pub const RUNG: u32 = 2;

const MEMBARRIER_CMD_QUERY: nix::libc::c_long = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: nix::libc::c_long = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: nix::libc::c_long = 1 << 2;

fn membarrier(cmd: nix::libc::c_long) -> nix::libc::c_long {
    // Miri has no membarrier: the fenced fallback (what a kernel without
    // it gets) is what it checks.
    if cfg!(miri) {
        return -1;
    }
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    unsafe {
        nix::libc::syscall(
            nix::libc::SYS_membarrier,
            cmd,
            0 as nix::libc::c_long,
            0 as nix::libc::c_long,
        )
    }
}

/// Whether this process takes part in the asymmetric barrier (see the
/// module documentation): the kernel has it, and the process is registered
/// (on the first call). Producers of processes that do not fence every
/// message instead.
pub fn asymmetric() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let wanted = MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED;
        let q = membarrier(MEMBARRIER_CMD_QUERY);
        q >= 0 && q & wanted == wanted && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0
    })
}

/// The bell of one ring.
#[derive(Debug, Clone)]
pub struct Bell {
    shm: Shm,
    /// Offset of the bell word (4-aligned, inside the mapping).
    offset: usize,
    /// How a producer in a VM wakes the consumer instead of a futex wake
    /// (which its own kernel would get): the ivshmem doorbell.
    remote: Option<crate::doorbell::Doorbell>,
}

impl Bell {
    /// The bell whose word is at `offset` of `shm` (panics outside it).
    pub fn new(shm: &Shm, offset: usize) -> Bell {
        let _ = shm.atomic_u32(offset);
        Bell {
            shm: shm.clone(),
            offset,
            remote: None,
        }
    }

    /// The bell at `offset` of `shm`, rung from a VM through its ivshmem
    /// `doorbell` (the worker turns the doorbell into a futex wake).
    pub fn through(shm: &Shm, offset: usize, doorbell: crate::doorbell::Doorbell) -> Bell {
        Bell {
            remote: Some(doorbell),
            ..Bell::new(shm, offset)
        }
    }

    /// Offset of the bell word in its mapping.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// Whether this end rings through an ivshmem doorbell (from a VM, whose
    /// processes take no part in the host's asymmetric barrier).
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    fn word(&self) -> &AtomicU32 {
        self.shm.atomic_u32(self.offset)
    }

    /// The consumer: announces that it goes to sleep. It must then
    /// re-check its ring (with a sequentially consistent load), and call
    /// [`Bell::sleep`] only if it is empty, or [`Bell::awake`] if not.
    pub fn announce(&self) {
        // Still announced since the last barrier (a sleep that timed out,
        // and no producer rang since): a producer that published before
        // that barrier is visible to the re-check, and one that publishes
        // after it finds the word sleeping, so no new barrier is needed.
        // Idle consumers wake on their timeouts many times a second; this
        // keeps those wake-ups free of the barrier's inter-processor
        // interrupts.
        if self.word().swap(SLEEPING, Ordering::SeqCst) == SLEEPING {
            return;
        }
        if asymmetric() {
            // Producers that only fence for the compiler: their stores are
            // now visible, and their next loads see the announcement.
            membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED);
        }
    }

    /// The consumer: no longer sleeping.
    pub fn awake(&self) {
        self.word().store(AWAKE, Ordering::Relaxed);
    }

    /// The consumer, after [`Bell::announce`] and a re-check that found
    /// nothing: sleeps until woken or `timeout` (returns at once if the
    /// producer rang in between). A producer that rang marked it awake; a
    /// sleep that timed out leaves the word announced (the first producer
    /// to publish then rings once), so that the next [`Bell::announce`]
    /// needs no barrier.
    pub fn sleep(&self, timeout: Duration) {
        let ts = nix::libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as nix::libc::time_t,
            tv_nsec: timeout.subsec_nanos() as nix::libc::c_long,
        };
        // SAFETY: the word is a live, 4-aligned u32 of the shared mapping
        // (checked in `new`; the mapping lives as long as `self`); the
        // timeout is a local timespec. FUTEX_WAIT only reads the word and
        // compares it with SLEEPING; the mapping is shared, so the wait is
        // keyed by the underlying page, as the producer's wake is.
        unsafe {
            nix::libc::syscall(
                nix::libc::SYS_futex,
                self.word().as_ptr(),
                nix::libc::FUTEX_WAIT,
                SLEEPING,
                &ts as *const nix::libc::timespec,
                std::ptr::null::<u32>(),
                0u32,
            );
        }
        // Rung from a VM while the timeout struck: awake now (the
        // doorbell thread's wake finds nobody, harmlessly).
        let _ = self
            .word()
            .compare_exchange(RUNG, AWAKE, Ordering::SeqCst, Ordering::Relaxed);
    }

    /// The producer, after publishing: wakes the consumer if it announced
    /// that it sleeps (returns whether it did). A load when it does not
    /// (the busy path).
    #[inline]
    pub fn ring(&self) -> bool {
        match &self.remote {
            // From a VM: the word says that the doorbell was rung, and the
            // worker's doorbell thread does the futex wake.
            Some(d) if self.take(SLEEPING, RUNG) => d.ring(),
            None if self.take(SLEEPING, AWAKE) => self.wake(),
            _ => return false,
        }
        true
    }

    /// The worker, on a doorbell from a VM: wakes the consumer if a
    /// producer in the VM rang for it ([`RUNG`]). Returns whether it did.
    pub fn wake_rung(&self) -> bool {
        let rung = self.take(RUNG, AWAKE);
        if rung {
            self.wake();
        }
        rung
    }

    /// Moves the word from `from` to `to`, if it holds `from` (a load
    /// first: the busy path, where it does not, writes nothing).
    #[inline]
    fn take(&self, from: u32, to: u32) -> bool {
        let w = self.word();
        w.load(Ordering::SeqCst) == from
            && w.compare_exchange(from, to, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
    }

    /// Wakes one thread sleeping on the word.
    fn wake(&self) {
        // SAFETY: as in `sleep`; FUTEX_WAKE does not touch the word.
        unsafe {
            nix::libc::syscall(
                nix::libc::SYS_futex,
                self.word().as_ptr(),
                nix::libc::FUTEX_WAKE,
                1u32,
                std::ptr::null::<nix::libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    #[test]
    fn a_sleeper_is_woken_by_a_ring_and_never_misses_one() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let shm = Shm::map(file.path(), Some(4096)).unwrap();
        let bell = Bell::new(&shm, 64);
        // The "ring": a counter the producer bumps before ringing.
        let published = Arc::new(AtomicU64::new(0));
        let rounds = 2000u64;
        let consumer = {
            let (bell, published) = (bell.clone(), published.clone());
            std::thread::spawn(move || {
                let mut seen = 0;
                let mut slept = 0u32;
                while seen < rounds {
                    if published.load(Ordering::SeqCst) > seen {
                        seen += 1;
                        continue;
                    }
                    bell.announce();
                    if published.load(Ordering::SeqCst) > seen {
                        bell.awake();
                        continue;
                    }
                    let t = Instant::now();
                    bell.sleep(Duration::from_secs(5));
                    // A lost wake-up would sleep the whole timeout.
                    assert!(t.elapsed() < Duration::from_secs(4), "a wake-up was lost");
                    slept += 1;
                }
                slept
            })
        };
        for i in 0..rounds {
            published.store(i + 1, Ordering::SeqCst);
            bell.ring();
            if i % 7 == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        let slept = consumer.join().unwrap();
        assert!(slept > 0, "the consumer never slept");
    }

    #[test]
    fn a_sleep_ends_at_its_timeout() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let shm = Shm::map(file.path(), Some(4096)).unwrap();
        let bell = Bell::new(&shm, 0);
        bell.announce();
        let t = Instant::now();
        bell.sleep(Duration::from_millis(30));
        assert!(t.elapsed() >= Duration::from_millis(25));
        // Nobody rang: still announced, so the next announce needs no
        // barrier, and the first producer to publish rings (once).
        assert_eq!(bell.word().load(Ordering::Relaxed), SLEEPING);
        assert!(bell.ring());
        assert_eq!(bell.word().load(Ordering::Relaxed), AWAKE);
        assert!(!bell.ring());
    }
}
