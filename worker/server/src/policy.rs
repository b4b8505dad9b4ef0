//! The default scheduling policy, over the [`Ledger`] that every executor
//! shares: it decides which VM's kernel launches run next and enforces
//! each VM's limits, with every decision made in the executor that asks.
//!
//! - **Weighted fair share of device time.** A VM's *virtual time* is its
//!   device time (measured per kernel at completion) divided by its weight.
//!   A launch waits while the VM's virtual time is ahead of the least of
//!   the other active VMs of its class by more than [`SLACK`]; a VM that
//!   was idle catches up to at most [`SLACK`] behind (it does not bank the
//!   time it did not use). Work-conserving: only VMs with kernels in flight
//!   or launches waiting count, and those whose last kernel completed
//!   within [`FAIR_WINDOW`] (the moment between a guest's wait for its
//!   kernels and its next launch is not idleness). Kernels are charged at
//!   their expected device time when admitted, and corrected when they
//!   complete, so kernels in flight count at once.
//! - **Strict priority classes.** A launch waits while a VM of a higher
//!   class is active (kernels in flight, launches waiting, or a kernel
//!   completed within [`ANTICIPATION`], so that the gap between one of its
//!   kernels and its next does not let lower classes in).
//! - **Rate limits.** Launches per second and bytes per second (a
//!   generic cell-rate algorithm with [`BURST`] of tolerance), and a cap on
//!   the share of device time (device time repaid at the capped rate).
//! - **Bounded device queue.** At most [`MAX_IN_FLIGHT`] kernels per VM are
//!   on the device, so its queue does not hide the policy; the bound is
//!   lifted while none of the VM's kernels runs and none has progressed
//!   for [`STUCK`] (its kernels wait for something other than the device,
//!   such as a user event that a later call sets).
//! - **Memory quota.** Device memory is charged when an object is created
//!   and credited when it is destroyed; a charge beyond the quota is
//!   refused, and the API returns its out-of-memory error.
//!
//! A launch that must wait is held in its channel (the guest's call stays
//! asynchronous; its later calls queue behind it, in order) while the
//! channel's thread sleeps and asks again.

use std::cell::Cell;
use std::time::Duration;

use remoting::worker::{Admission, Admit, Caller};

use crate::ledger::{Field, Ledger, VmSlot, now_ns};

/// How far (weight-1 device nanoseconds) a VM's virtual time may run ahead
/// of the least active VM's.
pub const SLACK: Duration = Duration::from_millis(5);
/// How long after its last kernel completed a VM still holds lower
/// priority classes back.
pub const ANTICIPATION: Duration = Duration::from_millis(2);
/// How long after its last kernel completed a VM still counts as active
/// in the fair share (its guest may be slow to launch the next one on a
/// busy host: a VM that misses this window loses what it was owed).
pub const FAIR_WINDOW: Duration = Duration::from_millis(20);
/// Tolerance of the rate limits: how far behind its schedule a VM may
/// catch up.
pub const BURST: Duration = Duration::from_millis(50);
/// Kernels per VM on the device at once.
pub const MAX_IN_FLIGHT: u64 = 2;
/// How long kernels in flight that do not run and do not complete hold a
/// VM's launches back.
pub const STUCK: Duration = Duration::from_millis(20);

/// Virtual-time units per device nanosecond at weight 1.
const VT_SCALE: u64 = 1024;

/// Resources of the specifications that the policy knows.
pub mod resource {
    /// One kernel launch.
    pub const KERNEL: &str = "kernel_invocation";
    /// Bytes of device memory.
    pub const MEMORY: &str = "device_memory";
    /// Bytes moved to the device.
    pub const TO_DEVICE: &str = "bytes_to_device";
    /// Bytes moved from the device.
    pub const FROM_DEVICE: &str = "bytes_from_device";
    /// Bytes the guest reads or writes in place (in the region's heap).
    pub const IN_PLACE: &str = "bytes_in_place";
}

/// Calls a channel's thread counts before publishing them to the ledger
/// (it also publishes whenever its channel is idle).
const FLUSH_EVERY: u32 = 1024;

/// A channel thread's call counts not yet in the ledger: the fast path
/// adds to these plain counters, not to memory shared between processes.
struct Counts {
    /// The VM's slot and the API's number the counts are of.
    vm: usize,
    api: usize,
    /// Calls counted since the last flush.
    pending: u32,
    /// Calls and errors per function id (ids beyond share the last).
    funcs: Box<[(u64, u64); crate::ledger::FUNCS]>,
    /// Timed calls per latency bucket, and their total time.
    buckets: [u64; crate::ledger::LATENCY_BUCKETS.len() + 1],
    sum_ns: u64,
}

impl Counts {
    fn add(&mut self, func: u32, ok: bool, took: Option<Duration>) {
        let f = &mut self.funcs[(func as usize).min(crate::ledger::FUNCS - 1)];
        f.0 += 1;
        f.1 += u64::from(!ok);
        self.pending += 1;
        if let Some(t) = took {
            self.buckets[crate::ledger::bucket(t)] += 1;
            self.sum_ns += t.as_nanos() as u64;
        }
    }

    fn flush(&mut self, ledger: &Ledger) {
        if self.pending == 0 {
            return;
        }
        let vm = ledger.slot(self.vm);
        if vm.get(Field::State) != 0 {
            vm.add_calls(self.api, &self.funcs[..], &self.buckets, self.sum_ns);
        }
        self.funcs.iter_mut().for_each(|f| *f = (0, 0));
        self.buckets = Default::default();
        self.sum_ns = 0;
        self.pending = 0;
    }
}

thread_local! {
    static COUNTS: std::cell::RefCell<Counts> = std::cell::RefCell::new(Counts {
        vm: usize::MAX,
        api: 0,
        pending: 0,
        funcs: Box::new([(0, 0); crate::ledger::FUNCS]),
        buckets: Default::default(),
        sum_ns: 0,
    });

    /// Whether this thread's call being admitted counts in its VM's
    /// `Waiting` (each channel admits on its own thread).
    static WAITING: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The default policy.
#[derive(Debug, Clone)]
pub struct Policy {
    ledger: Ledger,
}

impl Policy {
    /// The policy over `ledger`.
    pub fn new(ledger: Ledger) -> Policy {
        Policy { ledger }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn vm(&self, caller: &Caller) -> Option<VmSlot> {
        let v = self.ledger.slot(caller.vm_slot?);
        (v.get(Field::State) != 0).then_some(v)
    }

    fn set_waiting(vm: &VmSlot, on: bool) {
        WAITING.with(|w| match (w.get(), on) {
            (None, true) => {
                vm.add(Field::Waiting, 1);
                w.set(Some(vm.index()));
            }
            (Some(_), false) => {
                vm.sub(Field::Waiting, 1);
                w.set(None);
            }
            _ => {}
        });
    }

    /// A generic cell-rate check: whether `cost` ns of schedule fit now
    /// in the word `tat`; commits them when `commit`.
    fn rate(word: &std::sync::atomic::AtomicU64, now: u64, cost: u64, commit: bool) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let floor = now.saturating_sub(BURST.as_nanos() as u64);
        let mut cur = word.load(Relaxed);
        loop {
            if cur > now {
                return false;
            }
            if !commit {
                return true;
            }
            let next = cur.max(floor).saturating_add(cost);
            match word.compare_exchange_weak(cur, next, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(c) => cur = c,
            }
        }
    }

    /// Whether a VM (read through `get`) has kernels in flight or launches
    /// waiting.
    fn active(get: impl Fn(Field) -> u64) -> bool {
        get(Field::InFlight) > 0 || get(Field::Waiting) > 0
    }

    /// Whether a VM is held back by its own limits now (its launch rate or
    /// its device-share cap): it then cannot use what others would leave
    /// it, and does not count against them.
    fn limited(get: impl Fn(Field) -> u64, now: u64) -> bool {
        get(Field::LaunchTat) > now || get(Field::ShareTat) > now
    }

    fn admit_kernel(&self, vm: &VmSlot, now: u64) -> Admit {
        let s = vm.settings();
        // Idle until now: neither kernels in flight nor launches waiting,
        // nor a kernel completed a moment ago.
        let fair_extra = (FAIR_WINDOW - ANTICIPATION).as_nanos() as u64;
        let was_idle =
            !Self::active(|f| vm.get(f)) && vm.get(Field::ActiveUntil) + fair_extra <= now;
        // The VM's own limits: waiting for them is not demand.
        let launch_cost = s.max_launches_per_s.map(|r| 1_000_000_000 / r.max(1));
        if let Some(cost) = launch_cost
            && !Self::rate(vm.word(Field::LaunchTat), now, cost, false)
        {
            Self::set_waiting(vm, false);
            return Admit::Wait;
        }
        if s.max_device_share.is_some() && vm.get(Field::ShareTat) > now {
            Self::set_waiting(vm, false);
            return Admit::Wait;
        }
        let stuck = vm.get(Field::Running) == 0
            && now.saturating_sub(vm.get(Field::LastProgress)) > STUCK.as_nanos() as u64;
        if vm.get(Field::InFlight) >= MAX_IN_FLIGHT && !stuck {
            Self::set_waiting(vm, true);
            return Admit::Wait;
        }
        // One look at every other VM: is one of a higher class active, and
        // the least virtual time among the active VMs of this class.
        let mut higher_active = false;
        let mut least: Option<u64> = None;
        for (i, o) in self.ledger.each() {
            if i == vm.index() || Self::limited(&o, now) {
                continue;
            }
            let class = o(Field::Priority);
            if class < s.priority {
                higher_active |= Self::active(&o) || o(Field::ActiveUntil) > now;
            } else if class == s.priority
                && (Self::active(&o) || o(Field::ActiveUntil) + fair_extra > now)
            {
                let vt = o(Field::VirtualTime);
                least = Some(least.map_or(vt, |l| l.min(vt)));
            }
        }
        if higher_active {
            Self::set_waiting(vm, true);
            return Admit::Wait;
        }
        if let Some(least) = least {
            let slack = SLACK.as_nanos() as u64 * VT_SCALE;
            // Time not used while idle is not banked (a VM that stays
            // active keeps what it is owed).
            if was_idle {
                vm.word(Field::VirtualTime).fetch_max(
                    least.saturating_sub(slack),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            if vm.get(Field::VirtualTime) > least.saturating_add(slack) {
                Self::set_waiting(vm, true);
                return Admit::Wait;
            }
        }
        if let Some(cost) = launch_cost
            && !Self::rate(vm.word(Field::LaunchTat), now, cost, true)
        {
            return Admit::Wait;
        }
        Self::set_waiting(vm, false);
        vm.add(Field::InFlight, 1);
        // Charged now, at the expected device time, so that kernels in
        // flight count before they complete (corrected then).
        vm.add(
            Field::VirtualTime,
            vm.get(Field::EstimateNs).saturating_mul(VT_SCALE) / s.weight,
        );
        Admit::Run
    }
}

impl Admission for Policy {
    fn tag(&self, vm: &str) -> Option<usize> {
        self.ledger.vm(vm).map(|v| v.index())
    }

    fn api_tag(&self, api: &str) -> usize {
        self.ledger
            .api_index(api)
            .unwrap_or(crate::ledger::APIS - 1)
    }

    fn admit(&self, caller: &Caller, resource: &'static str, amount: u64, _waited: bool) -> Admit {
        let Some(vm) = self.vm(caller) else {
            return Admit::Run;
        };
        let now = now_ns();
        match resource {
            resource::KERNEL => self.admit_kernel(&vm, now),
            resource::MEMORY => {
                let quota = vm.settings().memory_quota.unwrap_or(u64::MAX);
                if vm.get(Field::Memory).saturating_add(amount) > quota {
                    vm.add(Field::MemoryRefusals, 1);
                    Admit::Refuse
                } else {
                    Admit::Run
                }
            }
            resource::TO_DEVICE | resource::FROM_DEVICE | resource::IN_PLACE => {
                if let Some(rate) = vm.settings().max_bytes_per_s {
                    let cost = (u128::from(amount) * 1_000_000_000 / u128::from(rate.max(1)))
                        .min(u128::from(u64::MAX)) as u64;
                    if !Self::rate(vm.word(Field::BytesTat), now, cost, true) {
                        return Admit::Wait;
                    }
                }
                let f = match resource {
                    resource::TO_DEVICE => Field::BytesToDevice,
                    resource::FROM_DEVICE => Field::BytesFromDevice,
                    _ => Field::BytesInPlace,
                };
                vm.add(f, amount);
                Admit::Run
            }
            _ => Admit::Run,
        }
    }

    fn wait_over(&self, caller: &Caller, _resource: &'static str, held: Duration) {
        if let Some(vm) = self.vm(caller) {
            Self::set_waiting(&vm, false);
            vm.add(Field::ThrottledNs, held.as_nanos() as u64);
        }
    }

    fn started(&self, caller: &Caller, resource: &'static str) {
        if resource == resource::KERNEL
            && let Some(vm) = self.vm(caller)
        {
            vm.add(Field::Running, 1);
            vm.set(Field::LastProgress, now_ns());
        }
    }

    fn completed(&self, caller: &Caller, resource: &'static str, device_time: Option<Duration>) {
        if resource != resource::KERNEL {
            return;
        }
        let Some(vm) = self.vm(caller) else {
            return;
        };
        vm.sub(Field::InFlight, 1);
        let s = vm.settings();
        let est = vm.get(Field::EstimateNs);
        let Some(t) = device_time else {
            // Never ran, or ran unmeasured (CUDA launches): the charge made
            // at admission comes back; no kernel is known to have finished,
            // so no progress is marked (and no clock read on this path).
            vm.sub(Field::VirtualTime, est.saturating_mul(VT_SCALE) / s.weight);
            return;
        };
        let now = now_ns();
        vm.set(Field::LastProgress, now);
        vm.sub(Field::Running, 1);
        let ns = t.as_nanos() as u64;
        vm.add(Field::Kernels, 1);
        vm.add(Field::DeviceNs, ns);
        // The admission charged `est`: the difference now.
        if ns >= est {
            vm.add(
                Field::VirtualTime,
                (ns - est).saturating_mul(VT_SCALE) / s.weight,
            );
        } else {
            vm.sub(
                Field::VirtualTime,
                (est - ns).saturating_mul(VT_SCALE) / s.weight,
            );
        }
        vm.set(
            Field::EstimateNs,
            if est == 0 { ns } else { (est * 7 + ns) / 8 },
        );
        vm.set(Field::ActiveUntil, now + ANTICIPATION.as_nanos() as u64);
        if let Some(share) = s.max_device_share {
            // The device time is repaid at the capped rate: launches wait
            // until then.
            let repay = (ns as f64 / share.max(1e-6)) as u64;
            let floor = now.saturating_sub(BURST.as_nanos() as u64);
            let _ = vm.word(Field::ShareTat).fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |t| Some(t.max(floor).saturating_add(repay)),
            );
        }
    }

    fn charge(&self, caller: &Caller, resource: &'static str, amount: i64) -> bool {
        if resource != resource::MEMORY {
            return true;
        }
        let Some(vm) = self.vm(caller) else {
            return true;
        };
        if amount < 0 {
            vm.sub(Field::Memory, amount.unsigned_abs());
            return true;
        }
        let quota = vm.settings().memory_quota.unwrap_or(u64::MAX);
        let ok = vm
            .word(Field::Memory)
            .fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |m| m.checked_add(amount as u64).filter(|&n| n <= quota),
            )
            .is_ok();
        if !ok {
            vm.add(Field::MemoryRefusals, 1);
        }
        ok
    }

    fn served(&self, caller: &Caller, func: u32, ok: bool, took: Option<Duration>) {
        let Some(slot) = caller.vm_slot else {
            return;
        };
        COUNTS.with(|c| {
            let mut c = c.borrow_mut();
            if (c.vm, c.api) != (slot, caller.api_index) {
                c.flush(&self.ledger);
                (c.vm, c.api) = (slot, caller.api_index);
            }
            c.add(func, ok, took);
            if c.pending >= FLUSH_EVERY {
                c.flush(&self.ledger);
            }
        });
    }

    fn idle(&self, _caller: &Caller) {
        COUNTS.with(|c| c.borrow_mut().flush(&self.ledger));
    }
}
