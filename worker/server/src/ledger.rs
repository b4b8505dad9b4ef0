//! The ledger: every VM's scheduling settings, scheduler state and
//! counters, in one shared-memory file that the supervisor creates and
//! every executor maps. The policy's state that spans isolation groups
//! (virtual device time, token buckets, memory in use) lives here, so an
//! executor decides without a round trip to anyone; the supervisor writes
//! settings (also when the configuration is reloaded) and reads the
//! counters for the metrics.
//!
//! ```text
//! offset 0      header: MAGIC, slot count
//! offset 64     APIS × (name hash u64, name NAME bytes): the APIs' numbering
//! offset VMS    MAX_VMS slots of SLOT_WORDS u64 words each (see `Field`)
//! ```
//! Every word is an atomic `u64`. No guest maps the file.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use transport::Shm;

const MAGIC: u64 = u64::from_le_bytes(*b"AVALDG01");
/// Most VMs a worker serves.
pub const MAX_VMS: usize = 64;
/// Most APIs numbered in the ledger.
pub const APIS: usize = 4;
/// Functions per API with counters of their own (ids beyond share the last).
pub const FUNCS: usize = 256;
const NAME: usize = 56;
const API_TABLE: usize = 64;
const VMS: usize = API_TABLE + APIS * (8 + NAME);
/// Upper bounds (seconds) of the call-latency histogram's buckets; one
/// more bucket counts everything slower.
pub const LATENCY_BUCKETS: [f64; 20] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
    5e-2, 0.1, 0.25, 0.5, 1.0, 10.0,
];
const LATENCY_AT: usize = 64;
const FUNCS_AT: usize = LATENCY_AT + LATENCY_BUCKETS.len() + 2;
const SLOT_WORDS: usize = FUNCS_AT + APIS * FUNCS * 2;
/// The slot words holding the VM's name.
const NAME_AT: usize = 1;

/// A word of a VM's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Field {
    /// 0: the slot is free; otherwise in use.
    State = 0,
    // Settings, written by the supervisor.
    /// Share of device time relative to others (≥ 1).
    Weight = 9,
    /// 0 high, 1 normal, 2 low.
    Priority,
    /// Bytes of device memory the VM may hold (`u64::MAX`: no quota).
    MemoryQuota,
    /// Kernel launches per second (0: no limit).
    MaxLaunches,
    /// Bytes moved per second (0: no limit).
    MaxBytes,
    /// Largest share of device time, in millionths (1 000 000: no cap).
    MaxSharePpm,
    // Counters.
    /// Calls served.
    Calls = 16,
    /// Calls rejected or failed.
    Errors,
    /// Kernels completed.
    Kernels,
    /// Device time of completed kernels, in nanoseconds.
    DeviceNs,
    /// Bytes moved to the device.
    BytesToDevice,
    /// Bytes moved from the device.
    BytesFromDevice,
    /// Device memory held, in bytes.
    Memory,
    /// Time calls were held back by the policy, in nanoseconds.
    ThrottledNs,
    /// Channels attached (a gauge).
    Channels,
    /// Guest processes attached (a gauge).
    Processes,
    /// Times the VM's executor was restarted after dying.
    Restarts,
    /// Allocations refused by the memory quota.
    MemoryRefusals,
    /// Bytes the guest moved in place, in the region's heap.
    BytesInPlace,
    // Scheduler state.
    /// Device time weighted by the VM's weight (units of 1/1024 ns at
    /// weight 1).
    VirtualTime = 32,
    /// Kernels admitted and not yet completed.
    InFlight,
    /// Kernels running on the device.
    Running,
    /// Channels waiting for the policy (demand, not a rate limit).
    Waiting,
    /// Monotonic time (ns) of the last kernel start or completion.
    LastProgress,
    /// Theoretical arrival time (ns) of the next launch (rate limit).
    LaunchTat,
    /// Theoretical arrival time (ns) of the next byte (rate limit).
    BytesTat,
    /// Time (ns) until which the device-share cap holds launches back.
    ShareTat,
    /// Time (ns) until which the VM counts as active for priorities.
    ActiveUntil,
    /// The VM's expected device time of a kernel (ns; a moving average),
    /// charged to its virtual time when a launch is admitted and corrected
    /// when the kernel completes.
    EstimateNs,
    /// Sum of call latencies, in nanoseconds.
    LatencySumNs = LATENCY_AT - 1,
}

/// A VM's scheduling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Share of device time relative to others (≥ 1).
    pub weight: u64,
    /// 0 high, 1 normal, 2 low.
    pub priority: u64,
    /// Device memory the VM may hold, in bytes.
    pub memory_quota: Option<u64>,
    /// Kernel launches per second.
    pub max_launches_per_s: Option<u64>,
    /// Bytes moved per second.
    pub max_bytes_per_s: Option<u64>,
    /// Largest share of device time, 0 to 1.
    pub max_device_share: Option<f64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            weight: 1,
            priority: 1,
            memory_quota: None,
            max_launches_per_s: None,
            max_bytes_per_s: None,
            max_device_share: None,
        }
    }
}

/// The ledger file, mapped.
#[derive(Debug, Clone)]
pub struct Ledger {
    shm: Shm,
}

/// FNV-1a of an API's name (never 0).
fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// The monotonic clock, in nanoseconds (the same in every process).
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    })
}

impl Ledger {
    /// Creates an empty ledger at `path` (replacing any file there).
    pub fn create(path: &Path) -> anyhow::Result<Ledger> {
        let _ = std::fs::remove_file(path);
        let shm = Shm::map(path, Some((VMS + MAX_VMS * SLOT_WORDS * 8) as u64))?;
        shm.atomic_u64(8).store(MAX_VMS as u64, Ordering::Relaxed);
        shm.atomic_u64(0).store(MAGIC, Ordering::Release);
        Ok(Ledger { shm })
    }

    /// Opens the ledger a supervisor created.
    pub fn open(path: &Path) -> anyhow::Result<Ledger> {
        let shm = Shm::map(path, None)?;
        anyhow::ensure!(
            shm.len() >= VMS + MAX_VMS * SLOT_WORDS * 8
                && shm.atomic_u64(0).load(Ordering::Acquire) == MAGIC,
            "{} is not a ledger of this worker version",
            path.display()
        );
        Ok(Ledger { shm })
    }

    /// The slot of the VM called `name`, if it has one.
    pub fn vm(&self, name: &str) -> Option<VmSlot> {
        self.vms().into_iter().find(|v| v.name() == name)
    }

    /// Every VM's slot.
    pub fn vms(&self) -> Vec<VmSlot> {
        (0..MAX_VMS)
            .map(|i| self.slot(i))
            .filter(|v| v.get(Field::State) != 0)
            .collect()
    }

    /// The slots in use, borrowed (no allocation: the scheduler looks at
    /// every VM on each launch): `(index, field reader)`.
    pub fn each(&self) -> impl Iterator<Item = (usize, impl Fn(Field) -> u64 + '_)> + '_ {
        (0..MAX_VMS).filter_map(move |i| {
            let base = VMS + i * SLOT_WORDS * 8;
            let get = move |f: Field| {
                self.shm
                    .atomic_u64(base + (f as usize) * 8)
                    .load(Ordering::Relaxed)
            };
            (get(Field::State) != 0).then_some((i, get))
        })
    }

    /// The slot at `index` (in use or not).
    pub fn slot(&self, index: usize) -> VmSlot {
        VmSlot {
            shm: self.shm.clone(),
            base: VMS + index.min(MAX_VMS - 1) * SLOT_WORDS * 8,
            index,
        }
    }

    /// Gives VM `name` a slot (its own, if it has one), with `settings`.
    /// A new slot starts with every counter at zero.
    pub fn add_vm(&self, name: &str, settings: &Settings) -> anyhow::Result<VmSlot> {
        let slot = match self.vm(name) {
            Some(v) => v,
            None => {
                let free = (0..MAX_VMS)
                    .map(|i| self.slot(i))
                    .find(|v| v.get(Field::State) == 0)
                    .ok_or_else(|| anyhow::anyhow!("more than {MAX_VMS} VMs"))?;
                free.shm.zero(free.base, SLOT_WORDS * 8);
                let b = name.as_bytes();
                free.shm
                    .write(free.base + NAME_AT * 8, &b[..b.len().min(NAME - 1)]);
                free.word(Field::State).store(1, Ordering::Release);
                free
            }
        };
        slot.set_settings(settings);
        Ok(slot)
    }

    /// Frees VM `name`'s slot.
    pub fn remove_vm(&self, name: &str) {
        if let Some(v) = self.vm(name) {
            v.word(Field::State).store(0, Ordering::Release);
        }
    }

    /// The number of API `name` in this ledger (numbered on first use);
    /// none when every number is taken.
    pub fn api_index(&self, name: &str) -> Option<usize> {
        let h = name_hash(name);
        for i in 0..APIS {
            let at = API_TABLE + i * (8 + NAME);
            let w = self.shm.atomic_u64(at);
            match w.compare_exchange(0, h, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let b = name.as_bytes();
                    self.shm.write(at + 8, &b[..b.len().min(NAME - 1)]);
                    return Some(i);
                }
                Err(cur) if cur == h => return Some(i),
                Err(_) => {}
            }
        }
        None
    }

    /// The APIs numbered so far: (number, name).
    pub fn apis(&self) -> Vec<(usize, String)> {
        (0..APIS)
            .filter_map(|i| {
                let at = API_TABLE + i * (8 + NAME);
                (self.shm.atomic_u64(at).load(Ordering::Acquire) != 0)
                    .then(|| (i, read_name(&self.shm, at + 8)))
            })
            .collect()
    }
}

/// The latency bucket of a call that took `t`.
pub fn bucket(t: Duration) -> usize {
    let s = t.as_secs_f64();
    LATENCY_BUCKETS
        .iter()
        .position(|&b| s <= b)
        .unwrap_or(LATENCY_BUCKETS.len())
}

fn read_name(shm: &Shm, at: usize) -> String {
    let mut b = [0u8; NAME];
    shm.read(at, &mut b);
    let end = b.iter().position(|&c| c == 0).unwrap_or(NAME);
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// One VM's slot of the ledger.
#[derive(Debug, Clone)]
pub struct VmSlot {
    shm: Shm,
    /// Byte offset of the slot (inside the mapping, 8-aligned).
    base: usize,
    /// The slot's number.
    index: usize,
}

impl VmSlot {
    /// The slot's number.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The VM's name.
    pub fn name(&self) -> String {
        read_name(&self.shm, self.base + NAME_AT * 8)
    }

    fn at(&self, word: usize) -> &AtomicU64 {
        self.shm
            .atomic_u64(self.base + word.min(SLOT_WORDS - 1) * 8)
    }

    /// A field's word.
    pub fn word(&self, f: Field) -> &AtomicU64 {
        self.at(f as usize)
    }

    /// A field's value.
    pub fn get(&self, f: Field) -> u64 {
        self.word(f).load(Ordering::Relaxed)
    }

    /// Adds `n` to a counter.
    pub fn add(&self, f: Field, n: u64) {
        self.word(f).fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n` from a counter, stopping at zero.
    pub fn sub(&self, f: Field, n: u64) {
        let _ = self
            .word(f)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// Sets a field.
    pub fn set(&self, f: Field, v: u64) {
        self.word(f).store(v, Ordering::Relaxed);
    }

    /// The VM's settings.
    pub fn settings(&self) -> Settings {
        let opt = |f: Field, none: u64| Some(self.get(f)).filter(|&v| v != none);
        Settings {
            weight: self.get(Field::Weight).max(1),
            priority: self.get(Field::Priority).min(2),
            memory_quota: opt(Field::MemoryQuota, u64::MAX),
            max_launches_per_s: opt(Field::MaxLaunches, 0),
            max_bytes_per_s: opt(Field::MaxBytes, 0),
            max_device_share: opt(Field::MaxSharePpm, 1_000_000).map(|p| p as f64 / 1e6),
        }
    }

    /// Replaces the VM's settings (they apply to its next calls).
    pub fn set_settings(&self, s: &Settings) {
        self.set(Field::Weight, s.weight.max(1));
        self.set(Field::Priority, s.priority.min(2));
        self.set(Field::MemoryQuota, s.memory_quota.unwrap_or(u64::MAX));
        self.set(Field::MaxLaunches, s.max_launches_per_s.unwrap_or(0));
        self.set(Field::MaxBytes, s.max_bytes_per_s.unwrap_or(0));
        self.set(
            Field::MaxSharePpm,
            s.max_device_share
                .map_or(1_000_000, |v| (v.clamp(0.0, 1.0) * 1e6) as u64),
        );
    }

    /// Records a call served: function `func` of API number `api`, timed
    /// or not.
    pub fn record_call(&self, api: usize, func: u32, ok: bool, took: Option<Duration>) {
        let mut funcs = [(0u64, 0u64); FUNCS];
        funcs[(func as usize).min(FUNCS - 1)] = (1, u64::from(!ok));
        let mut buckets = [0u64; LATENCY_BUCKETS.len() + 1];
        if let Some(t) = took {
            buckets[bucket(t)] = 1;
        }
        self.add_calls(
            api,
            &funcs,
            &buckets,
            took.map_or(0, |t| t.as_nanos() as u64),
        );
    }

    /// Adds counts of calls of API number `api`: calls and errors per
    /// function id, timed calls per latency bucket, and their total time.
    pub fn add_calls(&self, api: usize, funcs: &[(u64, u64)], buckets: &[u64], sum_ns: u64) {
        let (mut calls, mut errors) = (0, 0);
        for (f, &(c, e)) in funcs.iter().enumerate().take(FUNCS) {
            if c == 0 && e == 0 {
                continue;
            }
            let at = FUNCS_AT + (api.min(APIS - 1) * FUNCS + f) * 2;
            self.at(at).fetch_add(c, Ordering::Relaxed);
            self.at(at + 1).fetch_add(e, Ordering::Relaxed);
            calls += c;
            errors += e;
        }
        self.add(Field::Calls, calls);
        self.add(Field::Errors, errors);
        for (b, &n) in buckets.iter().enumerate().take(LATENCY_BUCKETS.len() + 1) {
            if n > 0 {
                self.at(LATENCY_AT + b).fetch_add(n, Ordering::Relaxed);
            }
        }
        self.add(Field::LatencySumNs, sum_ns);
    }

    /// Calls and errors of function `func` of API number `api`.
    pub fn function_calls(&self, api: usize, func: usize) -> (u64, u64) {
        let at = FUNCS_AT + (api.min(APIS - 1) * FUNCS + func.min(FUNCS - 1)) * 2;
        (
            self.at(at).load(Ordering::Relaxed),
            self.at(at + 1).load(Ordering::Relaxed),
        )
    }

    /// The latency histogram: a count per bucket of [`LATENCY_BUCKETS`]
    /// (not cumulative), then the count of slower calls.
    pub fn latency_buckets(&self) -> Vec<u64> {
        (0..=LATENCY_BUCKETS.len())
            .map(|b| self.at(LATENCY_AT + b).load(Ordering::Relaxed))
            .collect()
    }

    /// Forgets the state of work that died with an executor: memory held,
    /// kernels in flight, waiting channels, attached channels.
    pub fn reset_after_death(&self) {
        for f in [
            Field::Memory,
            Field::InFlight,
            Field::Running,
            Field::Waiting,
            Field::Channels,
            Field::Processes,
        ] {
            self.set(f, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_settings_and_counters_are_shared_between_mappings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let a = Ledger::create(&path).unwrap();
        let s = Settings {
            weight: 4,
            memory_quota: Some(1 << 20),
            max_device_share: Some(0.5),
            ..Settings::default()
        };
        let vm = a.add_vm("vm1", &s).unwrap();
        a.add_vm("vm2", &Settings::default()).unwrap();
        let b = Ledger::open(&path).unwrap();
        let seen = b.vm("vm1").unwrap();
        assert_eq!(seen.settings(), s);
        vm.add(Field::Memory, 100);
        assert_eq!(seen.get(Field::Memory), 100);
        seen.sub(Field::Memory, 1000);
        assert_eq!(vm.get(Field::Memory), 0);
        vm.record_call(1, 3, false, Some(Duration::from_micros(3)));
        assert_eq!(seen.function_calls(1, 3), (1, 1));
        assert_eq!(seen.latency_buckets()[2], 1);
        assert_eq!(b.vms().len(), 2);
        a.remove_vm("vm1");
        assert!(b.vm("vm1").is_none());
        let again = a.add_vm("vm3", &Settings::default()).unwrap();
        assert_eq!(again.get(Field::Calls), 0, "a reused slot starts at zero");
        assert_eq!(a.api_index("opencl"), Some(0));
        assert_eq!(b.api_index("testapi"), Some(1));
        assert_eq!(b.api_index("opencl"), Some(0));
        assert_eq!(a.apis()[1], (1, "testapi".to_string()));
    }
}
