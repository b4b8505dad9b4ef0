//! The scheduling hook: a call that its specification marks `consumes_rc`
//! (here `ta_create`, one `objects` unit) asks the session's admission
//! object before it runs. A refusal fails the call with the API's error and
//! the host function never runs; a policy that says "wait" holds the call
//! until it says "run"; the policy sees who is calling.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use remoting::testing::Harness;
use remoting::wire::{BLOB_INLINE, Blob, Decoder, Status};
use remoting::worker::{Admission, Admit, Caller};

mod common;

remoting::generated! {
    mod worker = "testapi_worker.rs";
}

/// `ta_create(seed, &status)` as a command body.
fn create(seed: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend((seed as i64 as u64).to_le_bytes());
    b.push(BLOB_INLINE);
    b.extend(4u64.to_le_bytes());
    b
}

/// Admits `limit` objects, then refuses; asks to wait `waits` times first.
struct Policy {
    limit: u32,
    admitted: AtomicU32,
    waits: AtomicU32,
    asked: AtomicU32,
    callers: Mutex<Vec<(Caller, &'static str, u64)>>,
}

impl Admission for Policy {
    fn admit(&self, caller: &Caller, resource: &'static str, amount: u64, _waited: bool) -> Admit {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.callers
            .lock()
            .unwrap()
            .push((caller.clone(), resource, amount));
        if self
            .waits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| w.checked_sub(1))
            .is_ok()
        {
            return Admit::Wait;
        }
        if self.admitted.fetch_add(1, Ordering::Relaxed) < self.limit {
            Admit::Run
        } else {
            Admit::Refuse
        }
    }
}

#[test]
fn calls_that_consume_resources_pass_the_admission_object_first() {
    // SAFETY: loading the test library runs no initialisers of note.
    let lib = unsafe { libloading::Library::new(common::library_path()) }.unwrap();
    let dispatch = worker::Dispatch {
        api: worker::Api::load(&lib),
    };
    let policy = std::sync::Arc::new(Policy {
        limit: 2,
        admitted: AtomicU32::new(0),
        waits: AtomicU32::new(3),
        asked: AtomicU32::new(0),
        callers: Mutex::new(Vec::new()),
    });
    let mut h = Harness::new(1);
    h.session_mut().admission = Some(policy.clone());
    h.session_mut().caller = Caller {
        vm: "vm1".into(),
        channel: 2,
        owner: 77,
        api: "testapi",
        ..Caller::default()
    };
    let mut created = Vec::new();
    for seed in [5, 6, 7] {
        let reply = h.reply(&dispatch, worker::func::ta_create, &create(seed));
        let (hd, mut d) = Decoder::new(&reply).unwrap();
        created.push((Status::from_u32(hd.flags).unwrap(), reply.clone()));
        if hd.flags == Status::Ok as u32 {
            assert_eq!(d.blob().unwrap(), Blob::Inline(&0i32.to_le_bytes()));
            assert_ne!(d.u64().unwrap(), 0, "an object id");
        } else {
            assert_eq!(hd.flags, Status::ApiError as u32);
            assert_eq!(d.i64().unwrap(), worker::REFUSED_ERROR);
        }
    }
    let statuses: Vec<Status> = created.iter().map(|c| c.0).collect();
    assert_eq!(statuses, [Status::Ok, Status::Ok, Status::ApiError]);
    // Three waits, then one ask per call.
    assert_eq!(policy.asked.load(Ordering::Relaxed), 6);
    // Only what ran is counted; the refused call never reached the library.
    assert_eq!(h.session_mut().consumed.get("objects"), Some(&2));
    let callers = policy.callers.lock().unwrap();
    assert!(callers.iter().all(|(c, r, a)| c.vm == "vm1"
        && c.channel == 2
        && c.owner == 77
        && c.api == "testapi"
        && *r == "objects"
        && *a == 1));
    // A call that consumes nothing does not ask.
    let asked = policy.asked.load(Ordering::Relaxed);
    drop(callers);
    let reply = h.reply(&dispatch, worker::func::ta_sleep, &0u64.to_le_bytes());
    assert_eq!(Decoder::new(&reply).unwrap().0.flags, Status::Ok as u32);
    assert_eq!(policy.asked.load(Ordering::Relaxed), asked);
}
