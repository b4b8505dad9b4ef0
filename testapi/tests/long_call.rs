//! A long call is neither a dead guest nor a dead worker: both heartbeats
//! go on while the call runs, and it completes. (Here the worker takes a
//! guest for dead after 300 ms of silence, the guest a worker after 500 ms;
//! the call lasts 1.5 s.)

use std::time::{Duration, Instant};

mod common;

remoting::generated! {
    mod remote = "testapi_guest.rs";
}

#[test]
fn a_long_call_is_not_a_dead_guest() {
    let worker = common::Worker::start("longcall", &[("AVA_STALE_MS", "300")]);
    // SAFETY: set before the guest code's first call, in this thread.
    unsafe {
        std::env::set_var("AVA_REGION", &worker.region);
        std::env::set_var("AVA_WORKER_TIMEOUT_MS", "500");
    }
    let mut st = 0;
    let obj = unsafe { remote::ta_create(4, &mut st) };
    assert_eq!(st, 0);
    let t = Instant::now();
    assert_eq!(unsafe { remote::ta_sleep(1500) }, 0);
    assert!(t.elapsed() >= Duration::from_millis(1500));
    // The channel survived: the object is still ours.
    let mut v = 0;
    assert_eq!(unsafe { remote::ta_get(obj, &mut v) }, 0);
    assert_eq!(v, 4);
}
