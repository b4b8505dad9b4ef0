//! Buffers in the region's heap: the worker places CPU-device buffers in
//! shared memory and the guest library reads and writes them in place.
//!
//! `samples/opencl/inplace.c` mixes every form of read and write with
//! kernels; it runs natively and remoted against workers with a large
//! heap (every buffer placed), no heap (none placed) and a heap too small
//! for all of them (some placed), and must print the same each time. The
//! logs show which path each run took, and that the heap is empty again
//! once the program has gone.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(180);

/// Runs the sample natively and through `stack`, with the guest library's
/// fast-path log on; checks both succeed with the same output. Returns the
/// remoted run.
fn run(stack: &mut common::Stack, exe: &std::path::Path) -> Output {
    let native = common::run_capture(Command::new(exe), TIMEOUT);
    assert!(
        native.status.success(),
        "native inplace failed:\n{}",
        common::text(&native.stdout)
    );
    let n = common::text(&native.stdout);
    assert!(n.contains("failures: 0"), "{n}");
    let mut c = stack.remote(exe);
    c.env("AVA_LOG", "warn,ava_opencl::fast_paths=trace");
    let remote = common::run_capture(c, TIMEOUT);
    assert!(
        remote.status.success(),
        "remoted inplace failed:\n{}\nstderr:\n{}\nworker log:\n{}",
        common::text(&remote.stdout),
        common::tail(&common::text(&remote.stderr), 30),
        common::tail(&stack.log(), 30)
    );
    common::assert_same_lines("inplace", &n, &common::text(&remote.stdout));
    remote
}

/// The worker's line on the heap after a guest's cleanup.
const CLEANUP_LINE: &str = "buffer heap after the guest's cleanup";

/// The value of field `name` (`name=value`) on a worker log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// Waits for the worker to log the heap after the guest's cleanup; returns
/// the whole log.
fn log_after_cleanup(stack: &common::Stack) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let log = stack.log();
        if log.contains(CLEANUP_LINE) {
            return log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no heap report after the guest left:\n{}",
            common::tail(&log, 30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every buffer's storage went back to the heap when the driver destroyed
/// it: each cleanup line (one per guest process) says nothing is in use.
fn assert_heap_empty_after_cleanup(log: &str) {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(CLEANUP_LINE)).collect();
    assert!(!lines.is_empty(), "{}", common::tail(log, 30));
    for line in lines {
        assert_eq!(
            field(line, "in_use"),
            Some("0"),
            "the heap is not empty after the guest's cleanup: {line}"
        );
    }
}

#[test]
fn buffers_in_the_heap_are_read_and_written_in_place() {
    let exe = common::build_sample("inplace");
    let mut stack = common::Stack::start("heap-large");
    let remote = run(&mut stack, &exe);
    let guest_log = common::text(&remote.stderr);
    assert!(guest_log.contains("read in place"), "{guest_log}");
    assert!(guest_log.contains("written in place"), "{guest_log}");
    let log = log_after_cleanup(&stack);
    assert!(log.contains("buffer placed in the heap"), "{log}");
    assert!(!log.contains("device's own memory"), "{log}");
    assert_heap_empty_after_cleanup(&log);
    let _ = std::fs::remove_file(&exe);
}

#[test]
fn without_a_heap_every_call_takes_the_ordinary_path() {
    let exe = common::build_sample("inplace");
    let mut stack = common::Stack::start_with("heap-none", &["--heap-size", "0"]);
    let remote = run(&mut stack, &exe);
    let guest_log = common::text(&remote.stderr);
    assert!(!guest_log.contains("in place"), "{guest_log}");
    let log = stack.log();
    assert!(!log.contains("buffer placed in the heap"), "{log}");
    let _ = std::fs::remove_file(&exe);
}

#[test]
fn a_small_heap_holds_what_fits_and_the_rest_uses_device_memory() {
    let exe = common::build_sample("inplace");
    // One channel with an 8 MiB arena: the region file rounds up to 16 MiB
    // and the heap gets the ~7.8 MiB left, room for one 4 MiB buffer of the
    // sample's two.
    let mut stack = common::Stack::start_with(
        "heap-small",
        &[
            "--channels",
            "1",
            "--ring-size",
            "65536",
            "--heap-size",
            "4096",
        ],
    );
    let remote = run(&mut stack, &exe);
    let guest_log = common::text(&remote.stderr);
    assert!(guest_log.contains("read in place"), "{guest_log}");
    let log = log_after_cleanup(&stack);
    assert!(log.contains("buffer placed in the heap"), "{log}");
    assert!(log.contains("device's own memory"), "{log}");
    assert_heap_empty_after_cleanup(&log);
    let _ = std::fs::remove_file(&exe);
}
