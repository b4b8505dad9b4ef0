//! A long call is neither a dead guest nor a dead worker: both heartbeats
//! go on while the call runs, and it completes. Here the worker takes a
//! guest for dead after `STALE_MS` of silence and the guest a worker after
//! `WORKER_TIMEOUT_MS`; the call lasts several times as long, so it would
//! fail (the guest reclaimed, or the call abandoned with the transport
//! error) if either side stopped beating while it ran. Both windows are
//! several of the heartbeats' periods (about 200 ms for the guest, 100 ms
//! for the worker), so a busy machine does not miss them.
//!
//! The guest side runs in a child process (this test binary again), whose
//! environment names the region and the worker timeout: the generated
//! guest code reads both from there.

mod common;

remoting::generated! {
    mod remote = "testapi_guest.rs";
}

const TEST: &str = "a_long_call_is_not_a_dead_guest";
const STALE_MS: &str = "1000";
const WORKER_TIMEOUT_MS: &str = "1000";
const CALL_MS: u32 = 3000;
/// Marks the child process that plays the guest.
const GUEST_ROLE: &str = "AVA_TEST_LONG_CALL_GUEST";

/// The value of field `name` (`name=value`) on a worker log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// The guest: an object, a call longer than both windows, then the object
/// again; gives its channel back before exiting.
fn guest() {
    let mut st = 0;
    // SAFETY: the test API's entry points get live locals (here and below)
    // and the object they returned.
    let obj = unsafe { remote::ta_create(4, &mut st) };
    assert_eq!(st, 0, "ta_create");
    // SAFETY: as above.
    assert_eq!(unsafe { remote::ta_sleep(CALL_MS) }, 0, "the long call");
    // The channel survived: the object is still ours.
    let mut v = 0;
    // SAFETY: as above.
    assert_eq!(unsafe { remote::ta_get(obj, &mut v) }, 0, "ta_get after");
    assert_eq!(v, 4);
    remoting::guest::shutdown();
}

#[test]
fn a_long_call_is_not_a_dead_guest() {
    if std::env::var_os(GUEST_ROLE).is_some() {
        guest();
        return;
    }
    let worker = common::Worker::start("longcall", &[("AVA_STALE_MS", STALE_MS)]);
    let out = common::guest_half(TEST, GUEST_ROLE, "1", &worker)
        .env("AVA_WORKER_TIMEOUT_MS", WORKER_TIMEOUT_MS)
        .output()
        .expect("run the guest process");
    common::check_guest("the guest", &out, &worker);
    // The worker saw one guest on one channel from start to end: it never
    // took the guest for dead, and the guest gave the channel back itself,
    // after its three calls, still owning the object it created.
    let released = worker.wait_for_line("guest released its channel");
    let log = worker.log();
    assert!(!log.contains("guest stopped beating"), "{log}");
    assert_eq!(
        log.lines().filter(|l| l.contains("guest attached")).count(),
        1,
        "{log}"
    );
    assert_eq!(field(&released, "calls"), Some("3"), "{released}");
    assert_eq!(field(&released, "rejected"), Some("0"), "{released}");
    assert_eq!(field(&released, "freed"), Some("1"), "{released}");
}
