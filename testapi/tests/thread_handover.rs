//! A thread that exits gives its channel back; a later thread of the same
//! process claims it again and goes on with the objects of the process,
//! the finished thread's included: they belong to the process (the worker
//! frees them when the process's last channel ends), not to the thread.
//!
//! The test API has no asynchronous call that creates an object, so every
//! id here is chosen by the worker; guest-chosen ids over a handed-over
//! channel are tested with OpenCL events (worker/tests/channel_handover.rs).
//!
//! The guest runs in a child process (this test binary again), whose
//! environment names the region.

use std::time::{Duration, Instant};

mod common;

remoting::generated! {
    mod remote = "testapi_guest.rs";
}

const TEST: &str = "a_later_thread_takes_over_a_finished_threads_channel";
/// Marks the child process that plays the guest.
const GUEST_ROLE: &str = "AVA_TEST_THREAD_HANDOVER_GUEST";

/// The value of field `name` (`name=value`) on a worker log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// The calling thread's channel.
fn channel() -> u32 {
    remoting::guest::connection(&remote::API, remoting::guest::no_region)
        .expect("a connection")
        .channel()
}

/// A new object holding `seed` (as an integer: handles are not `Send`).
fn create(seed: i32) -> usize {
    let mut st = -99;
    // SAFETY: `st` is a live i32.
    let obj = unsafe { remote::ta_create(seed, &mut st) };
    assert_eq!(st, remote::TA_OK, "ta_create({seed})");
    assert!(!obj.is_null());
    obj as usize
}

/// `ta_get`: the call's status and the value.
fn get(obj: usize) -> (i32, i32) {
    let mut v = 0;
    // SAFETY: `v` is a live i32.
    let rc = unsafe { remote::ta_get(obj as remote::ta_obj, &mut v) };
    (rc, v)
}

/// The guest: the main thread's object and channel (kept until the end);
/// thread A's two objects, changed by asynchronous calls; thread B, on A's
/// channel again, with an object of its own, uses and releases A's.
fn guest() {
    let main_obj = create(1);
    let main_channel = channel();
    let (a_channel, a1, a2) = std::thread::spawn(|| {
        let (a1, a2) = (create(10), create(20));
        // SAFETY: handles the guest library returned.
        unsafe {
            assert_eq!(remote::ta_add(a1 as remote::ta_obj, 5), remote::TA_OK);
            assert_eq!(remote::ta_add(a2 as remote::ta_obj, -3), remote::TA_OK);
        }
        assert_eq!(get(a1), (remote::TA_OK, 15));
        (channel(), a1, a2)
    })
    .join()
    .expect("thread A");
    assert_ne!(a_channel, main_channel, "thread A had a channel of its own");
    // Thread A has exited: its channel goes back to the region.
    let region = transport::Region::open(std::path::Path::new(
        &std::env::var_os("AVA_REGION").expect("AVA_REGION"),
    ))
    .expect("open the region");
    let deadline = Instant::now() + Duration::from_secs(30);
    while region.status(a_channel).expect("status").state != transport::ChannelState::Free {
        assert!(
            Instant::now() < deadline,
            "thread A's channel {a_channel} was not given back"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    std::thread::spawn(move || {
        let b = create(30);
        assert_eq!(channel(), a_channel, "thread B claims A's channel");
        let mut all = [main_obj, a1, a2, b];
        all.sort_unstable();
        all.windows(2)
            .for_each(|w| assert_ne!(w[0], w[1], "handles collide: {all:x?}"));
        assert_eq!(get(main_obj), (remote::TA_OK, 1));
        assert_eq!(get(a1), (remote::TA_OK, 15));
        assert_eq!(get(a2), (remote::TA_OK, 17));
        assert_eq!(get(b), (remote::TA_OK, 30));
        let mut dot = 0i64;
        // SAFETY: handles the guest library returned; live locals.
        unsafe {
            assert_eq!(remote::ta_add(a2 as remote::ta_obj, 4), remote::TA_OK);
            let values = [1, 2, 3];
            assert_eq!(
                remote::ta_dot(a1 as remote::ta_obj, values.as_ptr(), 3, &mut dot),
                remote::TA_OK
            );
            assert_eq!(remote::ta_release(a1 as remote::ta_obj), remote::TA_OK);
            assert_eq!(remote::ta_release(b as remote::ta_obj), remote::TA_OK);
        }
        assert_eq!(dot, 6 * 15);
        assert_eq!(get(a2), (remote::TA_OK, 21));
        // A released object is gone, whichever thread created it.
        assert_eq!(get(a1).0, remote::TA_INVALID_HANDLE);
    })
    .join()
    .expect("thread B");
    remoting::guest::shutdown();
}

#[test]
fn a_later_thread_takes_over_a_finished_threads_channel() {
    if std::env::var_os(GUEST_ROLE).is_some() {
        guest();
        return;
    }
    let worker = common::Worker::start("handover", &[]);
    let out = common::guest_half(TEST, GUEST_ROLE, "1", &worker)
        .output()
        .expect("run the guest process");
    common::check_guest("the guest", &out, &worker);
    // Three channels ended: the main thread's, A's and B's.
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = worker.log();
        if log.matches("guest released its channel").count() == 3 {
            break log;
        }
        assert!(Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!log.contains("cannot be bound"), "{log}");
    assert!(!log.contains("guest stopped beating"), "{log}");
    let released: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("guest released its channel"))
        .collect();
    // A's channel ended first, with the main thread's still open: nothing
    // was freed then. Whichever of the other two ended last freed what the
    // process still held (the main thread's object and A's second one).
    assert_eq!(field(released[0], "freed"), Some("0"), "{log}");
    let mut freed: Vec<&str> = released.iter().filter_map(|l| field(l, "freed")).collect();
    freed.sort_unstable();
    assert_eq!(freed, ["0", "0", "2"], "{log}");
    // The only call refused was B's ta_get of the object it had released.
    let rejected: u64 = released
        .iter()
        .filter_map(|l| field(l, "rejected")?.parse::<u64>().ok())
        .sum();
    assert_eq!(rejected, 1, "{log}");
}
