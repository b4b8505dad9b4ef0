//! A long call is neither a dead guest nor a dead worker: both heartbeats
//! go on while the call runs, and it completes. (Here the worker takes a
//! guest for dead after 300 ms of silence, the guest a worker after 500 ms;
//! the call lasts 1.5 s.)

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

remoting::generated! {
    mod remote = "testapi_guest.rs";
}

struct Worker(Child, PathBuf);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

fn library_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap()]
        .iter()
        .map(|d| d.join("libava_testapi.so"))
        .find(|p| p.exists())
        .expect("libava_testapi.so is built beside the tests")
}

#[test]
fn a_long_call_is_not_a_dead_guest() {
    let region = std::env::temp_dir().join(format!("ava-longcall-{}", std::process::id()));
    let _ = std::fs::remove_file(&region);
    let child = Command::new(env!("CARGO_BIN_EXE_testapi-worker"))
        .arg(&region)
        .arg(library_path())
        .env("AVA_STALE_MS", "300")
        .spawn()
        .expect("start testapi-worker");
    let _worker = Worker(child, region.clone());
    while !transport::Region::open(&region).is_ok_and(|r| r.worker_heartbeat() > 0) {
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: set before the guest code's first call, in this thread.
    unsafe {
        std::env::set_var("AVA_REGION", &region);
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
