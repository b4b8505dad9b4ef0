//! One worker process (`ava-worker --backends opencl,testapi`) serves
//! several APIs at once: an OpenCL guest
//! (unmodified `clinfo` through the OpenCL guest library) and test-API
//! guests on the same region at the same time; and a guest built from
//! another revision of the test API's specification is refused with an
//! error that names both revisions, at its first call, while the worker
//! goes on serving the others.
//!
//! Each guest runs in a process of its own (this test binary again, or
//! clinfo), which finds the region in its environment.

use std::path::PathBuf;
use std::process::{Command, Output};

mod common;

remoting::generated! {
    mod current = "testapi_guest.rs";
}

remoting::generated! {
    mod older = "testapi_older_guest.rs";
}

const TEST: &str = "one_worker_serves_opencl_and_the_test_api_and_refuses_other_revisions";
/// Which guest a child process plays.
const ROLE: &str = "AVA_TEST_MULTI_API_ROLE";

/// A guest of the test API at the worker's revision: its calls work.
fn current_guest() {
    let mut st = -99;
    // SAFETY: the test API's entry points get live locals, NULL, or the object they returned.
    let obj = unsafe { current::ta_create(21, &mut st) };
    assert_eq!(st, 0, "ta_create");
    // SAFETY: the test API's entry points get live locals, NULL, or the object they returned.
    assert_eq!(unsafe { current::ta_add(obj, 21) }, 0);
    let mut v = 0;
    // SAFETY: the test API's entry points get live locals, NULL, or the object they returned.
    assert_eq!(unsafe { current::ta_get(obj, &mut v) }, 0);
    assert_eq!(v, 42);
    // SAFETY: the test API's entry points get live locals, NULL, or the object they returned.
    assert_eq!(unsafe { current::ta_release(obj) }, 0);
    remoting::guest::shutdown();
}

/// A guest built from another revision: its first call, and every later
/// one, fails with the API's transport error (the refusal is logged), and
/// no call reaches a function.
fn older_guest() {
    // The log a guest library writes to stderr (as libava_opencl.so sets
    // up when it is loaded).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let mut st = -99;
    // SAFETY: the test API's entry points get live locals, NULL, or the object they returned.
    let obj = unsafe { older::ta_create(21, &mut st) };
    assert!(obj.is_null(), "a refused guest created an object");
    assert_eq!(st as i64, older::TRANSPORT_ERROR);
    let mut v = 0;
    assert_eq!(
        // SAFETY: the test API's entry points get live locals, NULL, or the object they returned.
        unsafe { older::ta_get(std::ptr::null_mut(), &mut v) } as i64,
        older::TRANSPORT_ERROR
    );
    assert_ne!(older::API.revision, current::API.revision);
}

fn guestlib() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let p = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("libava_opencl.so");
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (scripts/test.sh does)",
        p.display()
    );
    p
}

fn guest(role: &str, worker: &common::Worker) -> std::process::Child {
    common::guest_half(TEST, ROLE, role, worker)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start a guest process")
}

fn check(what: &str, out: &Output, worker: &common::Worker) {
    common::check_guest(what, out, worker);
}

#[test]
fn one_worker_serves_opencl_and_the_test_api_and_refuses_other_revisions() {
    match std::env::var(ROLE).as_deref() {
        Ok("current") => return current_guest(),
        Ok("older") => return older_guest(),
        _ => {}
    }
    let worker = common::Worker::start_ava_worker("multiapi", "opencl,testapi");
    let no_vendors = tempfile_dir();
    // All at once: clinfo through the OpenCL guest library, a test-API
    // guest, and a test-API guest of another revision.
    let clinfo = Command::new("clinfo")
        .arg("-l")
        .env("AVA_REGION", &worker.region)
        .env("LD_PRELOAD", guestlib())
        .env("OCL_ICD_VENDORS", &no_vendors)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("clinfo is installed");
    let current = guest("current", &worker);
    let older = guest("older", &worker);
    let older = older.wait_with_output().unwrap();
    check("the older guest", &older, &worker);
    let stderr = String::from_utf8_lossy(&older.stderr);
    assert!(
        stderr.contains("refused") && stderr.contains(&format!("{:016x}", older::API.revision)),
        "the older guest was told why:\n{stderr}"
    );
    check(
        "the current guest",
        &current.wait_with_output().unwrap(),
        &worker,
    );
    let remote = clinfo.wait_with_output().unwrap();
    check("remoted clinfo", &remote, &worker);
    let native = Command::new("clinfo").arg("-l").output().unwrap();
    assert!(native.status.success());
    assert_eq!(
        String::from_utf8_lossy(&remote.stdout),
        String::from_utf8_lossy(&native.stdout)
    );
    // The refusal names both revisions in the worker's log too; both
    // APIs were chosen on their channels.
    let refused = worker.wait_for_line("guest refused");
    assert!(
        refused.contains(&format!("{:016x}", older::API.revision))
            && refused.contains(&format!("{:016x}", current::API.revision)),
        "{refused}"
    );
    let log = worker.log();
    assert!(log.contains("api=opencl"), "{log}");
    assert!(log.contains("api=testapi"), "{log}");
    // The worker goes on serving: another current guest after the refusal.
    check(
        "a current guest after the refusal",
        &guest("current", &worker).wait_with_output().unwrap(),
        &worker,
    );
    let _ = std::fs::remove_dir(&no_vendors);
}

/// An empty directory (for `OCL_ICD_VENDORS`: remoted clinfo must not
/// reach the host's OpenCL platform natively).
fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("ava-multiapi-novendors-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
