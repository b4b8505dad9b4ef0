//! A channel's state between calls, and the scheduling hook.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::Outbox;

/// Where a channel records the call it is executing: one word in memory
/// that its supervisor can read if the executing process dies (written
/// with two plain stores per call, no synchronisation on the fast path).
#[derive(Debug, Clone)]
pub struct InFlightSlot {
    shm: transport::Shm,
    offset: usize,
    api: u8,
}

/// The bit of an [`InFlightSlot`] word that says a call is executing.
pub const IN_FLIGHT_BUSY: u64 = 1 << 63;

impl InFlightSlot {
    /// The slot at `offset` of `shm` (8-aligned, inside the mapping), for
    /// a channel of API number `api` (the supervisor's numbering).
    pub fn new(shm: transport::Shm, offset: usize, api: u8) -> InFlightSlot {
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= shm.len(),
            "slot {offset}"
        );
        InFlightSlot { shm, offset, api }
    }

    /// Function `func` starts executing.
    pub(crate) fn begin(&self, func: u32) {
        let word = IN_FLIGHT_BUSY | (u64::from(self.api) << 32) | u64::from(func);
        self.shm
            .atomic_u64(self.offset)
            .store(word, std::sync::atomic::Ordering::Relaxed);
    }

    /// The call has finished.
    pub(crate) fn end(&self) {
        self.shm
            .atomic_u64(self.offset)
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What an [`Admission`] decides for a call that consumes a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Run the call now.
    Run,
    /// Not yet: the channel's thread waits and asks again. The guest's
    /// calls stay in order (a channel's calls run one after the other), and
    /// other channels are not held up.
    Wait,
    /// Do not run it: the call fails with the API's error for a refusal
    /// (the value given to [`CallCtx::consume`]).
    Refuse,
}

/// Who makes a call, as an [`Admission`] sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The VM (its region's name).
    pub vm: String,
    /// The channel in the VM's region.
    pub channel: u32,
    /// The guest process (its pid as the guest reports it).
    pub owner: u32,
    /// The API of the channel.
    pub api: &'static str,
    /// The API's number for the admission object ([`Admission::api_tag`]).
    pub api_index: usize,
    /// The VM's number for the admission object ([`Admission::tag`]).
    pub vm_slot: Option<usize>,
}

/// The scheduling hook: every call that its specification marks
/// `consumes_rc(resource, amount)` asks the admission object the server
/// owns before it runs; work that completes on the device is reported back
/// with the device time it took; every call served is reported with its
/// outcome and latency (for metrics). A policy (fair share, priorities,
/// rate limits, quotas) implements this trait.
pub trait Admission: Send + Sync {
    /// The number by which the policy knows VM `vm`, given to its callers
    /// ([`Caller::vm_slot`]) so that it finds the VM's state without a
    /// lookup; none for a VM it does not know.
    fn tag(&self, vm: &str) -> Option<usize> {
        let _ = vm;
        None
    }

    /// The number by which the policy knows API `api` ([`Caller::api_index`]).
    fn api_tag(&self, api: &str) -> usize {
        let _ = api;
        0
    }

    /// Whether the call of `caller` that consumes `amount` of `resource`
    /// may run now. `waited` says that this call was told to wait before
    /// (the channel asks again until it may run).
    fn admit(&self, caller: &Caller, resource: &'static str, amount: u64, waited: bool) -> Admit;

    /// A call that was told to wait was then admitted or refused, after
    /// being held back for `held`.
    fn wait_over(&self, caller: &Caller, resource: &'static str, held: Duration) {
        let _ = (caller, resource, held);
    }

    /// Work of `caller` that was admitted for `resource` started running
    /// on the device (reported at most once per admitted call, before
    /// [`Admission::completed`]).
    fn started(&self, caller: &Caller, resource: &'static str) {
        let _ = (caller, resource);
    }

    /// Work of `caller` that was admitted for `resource` completed on the
    /// device, taking `device_time` there (`None`: it never ran, e.g. the
    /// driver refused it).
    fn completed(&self, caller: &Caller, resource: &'static str, device_time: Option<Duration>) {
        let _ = (caller, resource, device_time);
    }

    /// Charges `amount` units of `resource` that `caller` now holds (device
    /// memory, in bytes), if its quota allows: `false` refuses the charge
    /// (nothing is charged). A negative amount credits units back.
    fn charge(&self, caller: &Caller, resource: &'static str, amount: i64) -> bool {
        let _ = (caller, resource, amount);
        true
    }

    /// A call of `caller` (function id `func`) was served: `ok` unless it
    /// was rejected or failed. One call in [`LATENCY_SAMPLE`] is timed
    /// (`took`: how long the worker took); timing every call would cost
    /// the fast path more than the rest of the accounting.
    fn served(&self, caller: &Caller, func: u32, ok: bool, took: Option<Duration>) {
        let _ = (caller, func, ok, took);
    }

    /// The channel of `caller` has no call waiting: anything the object
    /// keeps per channel (counters gathered between flushes) should be
    /// published now.
    fn idle(&self, caller: &Caller) {
        let _ = caller;
    }
}

/// One call in this many is timed for [`Admission::served`].
pub const LATENCY_SAMPLE: u64 = 16;

/// The default policy: every call runs at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct AdmitAll;

impl Admission for AdmitAll {
    fn admit(&self, _: &Caller, _: &'static str, _: u64, _: bool) -> Admit {
        Admit::Run
    }
}

impl Session {
    /// The state of a new channel of guest process `owner`.
    pub fn new(owner: u32) -> Session {
        Session {
            owner,
            caller: Caller {
                owner,
                ..Caller::default()
            },
            ..Session::default()
        }
    }
}

/// Per-channel state kept between calls.
#[derive(Default)]
pub struct Session {
    /// Buffers kept with `lifetime_manual`, keyed by the guest's pointer.
    pub manual: HashMap<u64, Vec<u8>>,
    /// Units of each resource consumed (`consumes_rc`).
    pub consumed: Consumed,
    /// Calls served.
    pub calls: u64,
    /// Calls rejected (malformed, invalid handle, unavailable).
    pub rejected: u64,
    /// Messages for the guest produced by host callbacks.
    pub outbox: Arc<Outbox>,
    /// The guest process on this channel (its pid as it reports it): the
    /// owner of the handles its calls create.
    pub owner: u32,
    /// The region's buffer heap, when it has one and the backend places
    /// buffers in it.
    pub heap: Option<Arc<crate::heap::Heap>>,
    /// Who makes this channel's calls, for the admission object.
    pub caller: Caller,
    /// Decides whether calls that consume resources run (none: all run).
    pub admission: Option<Arc<dyn Admission>>,
    /// Where the call being executed is recorded (none: nowhere).
    pub in_flight: Option<InFlightSlot>,
    /// The reply buffer, reused from call to call.
    pub(super) reply: Vec<u8>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("caller", &self.caller)
            .field("calls", &self.calls)
            .field("rejected", &self.rejected)
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}

/// Units of each resource a session consumed (`consumes_rc`): a few
/// resources, counted on every call that names one, so a short list
/// looked up by the name's address first.
#[derive(Debug, Default, Clone)]
pub struct Consumed(Vec<(&'static str, u64)>);

impl Consumed {
    /// Counts `amount` more units of `resource`, without overflowing.
    pub fn add(&mut self, resource: &'static str, amount: u64) {
        let found = self
            .0
            .iter_mut()
            .find(|(r, _)| std::ptr::eq(*r, resource) || *r == resource);
        match found {
            Some((_, used)) => *used = used.saturating_add(amount),
            None => self.0.push((resource, amount)),
        }
    }

    /// The units of `resource` consumed, if any were.
    pub fn get(&self, resource: &str) -> Option<&u64> {
        self.0.iter().find(|(r, _)| *r == resource).map(|(_, n)| n)
    }
}
