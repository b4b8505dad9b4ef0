//! The worker dies under a guest that loops over calls (SIGKILL of the
//! supervisor and its executors, as a crash leaves them): the guest's call
//! fails with the API's error within a bounded time (the guest library's
//! worker timeout, `AVA_WORKER_TIMEOUT_MS`, here 5 s), every later call
//! fails at once instead
//! of waiting for the dead worker again, the handles the guest held give
//! errors once a worker serves the region again, and a guest started after
//! the restart is served.
//!
//! The guest is this test binary again, in a guest role
//! (`common::is_guest_half`), calling the guest library loaded into the
//! process. It stops at its first error, as PyOpenCL programs do, then
//! makes the later calls the test asks for.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Cl, ClSetup, Spawned};

/// The guest library's `$f`, which it must export.
macro_rules! cl {
    ($g:expr, $f:ident) => {
        $g.api.$f.expect(stringify!($f))
    };
}

/// The guest library's worker timeout in this test (`AVA_WORKER_TIMEOUT_MS`).
const WORKER_TIMEOUT_MS: u64 = 5000;
/// How soon after the worker's death the looping guest must see an error:
/// the worker timeout, plus room for a loaded machine.
const FIRST_ERROR_WITHIN: Duration = Duration::from_secs(15);
/// Calls the guest makes after its first error, each of which must fail.
const LATER_CALLS: u32 = 20;
/// "At once": the slowest of those calls, at most.
const AT_ONCE: Duration = Duration::from_millis(200);
/// CL_DEVICE_MAX_COMPUTE_UNITS.
const MAX_COMPUTE_UNITS: u32 = 0x1002;

const TEST: &str =
    "a_dead_worker_fails_calls_in_bounded_time_then_at_once_and_a_restarted_one_serves";

#[test]
fn a_dead_worker_fails_calls_in_bounded_time_then_at_once_and_a_restarted_one_serves() {
    if common::is_guest_half() {
        looping_guest();
        return;
    }
    let mut stack = common::Stack::start("restart");
    let err = std::env::temp_dir().join(format!("ava-restart-{}.stderr", std::process::id()));
    let mut c = stack.guest_half_command(TEST);
    c.stdin(Stdio::piped())
        .env("AVA_WORKER_TIMEOUT_MS", WORKER_TIMEOUT_MS.to_string())
        .stderr(std::fs::File::create(&err).expect("guest stderr file"));
    let mut guest = Spawned::start(c);
    let why = |g: &mut Spawned, stack: &common::Stack| {
        format!(
            "guest stdout:\n{}\nguest stderr:\n{}\nworker log:\n{}",
            g.printed(),
            common::tail(&std::fs::read_to_string(&err).unwrap_or_default(), 20),
            common::tail(&stack.log(), 30)
        )
    };
    guest.wait_for_line("looping", Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(300));

    let killed = Instant::now();
    stack.kill_hard();
    let first = guest.wait_for_line("first error", Duration::from_secs(90));
    let took = killed.elapsed();
    eprintln!("worker killed; the guest's first error after {took:?}: {first}");
    assert!(
        took < FIRST_ERROR_WITHIN,
        "first error after {took:?}\n{}",
        why(&mut guest, &stack)
    );
    assert_ne!(common::log_field(&first, "rc"), Some("0"), "{first}");

    let later = guest.wait_for_line("later calls", Duration::from_secs(60));
    eprintln!("{later}");
    assert_eq!(
        common::log_field(&later, "failed"),
        Some(LATER_CALLS.to_string().as_str()),
        "{later}\n{}",
        why(&mut guest, &stack)
    );
    let slowest: u128 = common::log_field(&later, "slowest_us")
        .and_then(|v| v.parse().ok())
        .expect("slowest_us");
    assert!(
        slowest < AT_ONCE.as_micros(),
        "a call after the first error took {slowest} µs: it waited for the dead worker again\n{}",
        why(&mut guest, &stack)
    );

    // A worker serves the region again: the guest's old handles give errors
    // (promptly), and a new guest is served.
    stack.restart();
    writeln!(guest.child.stdin.as_mut().expect("piped stdin"), "go").expect("tell the guest");
    let old = guest.wait_for_line("old handles", Duration::from_secs(90));
    eprintln!("{old}");
    for call in ["device_info", "finish"] {
        let rc = common::log_field(&old, call).expect("rc");
        assert_ne!(
            rc, "0",
            "{call} with a handle from before the restart: {old}"
        );
    }
    let slowest: u128 = common::log_field(&old, "slowest_us")
        .and_then(|v| v.parse().ok())
        .expect("slowest_us");
    assert!(
        slowest < Duration::from_secs(5).as_micros(),
        "{old}\n{}",
        why(&mut guest, &stack)
    );
    let status = guest.wait_exit(Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "{status}\n{}", why(&mut guest, &stack));

    common::assert_clinfo_list_same(&mut stack);
    assert!(stack.alive(), "the restarted worker is running");
    let _ = std::fs::remove_file(&err);
}

/// The guest half: a device query and a `clFinish` in a loop until the
/// first error; then [`LATER_CALLS`] more, timed; then, once told that the
/// worker was restarted, the same calls on the handles it holds.
fn looping_guest() {
    let g = Cl::guest();
    let s = ClSetup::new(&g);
    let mut units = 0u32;
    let calls = |units: &mut u32| -> [i32; 2] {
        // SAFETY: handles the guest library returned, a u32 for a u32 query.
        unsafe {
            [
                cl!(g, clGetDeviceInfo)(
                    s.device,
                    MAX_COMPUTE_UNITS,
                    4,
                    (units as *mut u32).cast(),
                    std::ptr::null_mut(),
                ),
                cl!(g, clFinish)(s.queue),
            ]
        }
    };
    println!("looping");
    let mut n = 0u64;
    let rc = loop {
        let rcs = calls(&mut units);
        if let Some(&rc) = rcs.iter().find(|&&rc| rc != 0) {
            break rc;
        }
        n += 1;
    };
    println!("first error rc={rc} after {n} loops");
    let (mut failed, mut slowest) = (0, Duration::ZERO);
    for _ in 0..LATER_CALLS {
        let t = Instant::now();
        let rcs = calls(&mut units);
        slowest = slowest.max(t.elapsed());
        if rcs.iter().all(|&rc| rc != 0) {
            failed += 1;
        }
    }
    println!(
        "later calls: failed={failed} of {LATER_CALLS} slowest_us={}",
        slowest.as_micros()
    );
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("wait for go");
    let t = Instant::now();
    let [device_info, finish] = calls(&mut units);
    println!(
        "old handles: device_info={device_info} finish={finish} slowest_us={}",
        t.elapsed().as_micros()
    );
}
