//! Test support: the test library built beside the tests, and a
//! `testapi-worker` process on a fresh region, stopped and removed on drop.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

/// `libava_testapi.so`. Integration tests run from target/<profile>/deps,
/// where cargo also leaves the cdylib it built for them; a plain build puts
/// it one up.
pub fn library_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap()]
        .iter()
        .map(|d| d.join("libava_testapi.so"))
        .find(|p| p.exists())
        .expect("libava_testapi.so is built beside the tests")
}

/// A running `testapi-worker` serving `region`.
pub struct Worker {
    child: Child,
    /// The region it serves.
    pub region: PathBuf,
}

impl Worker {
    /// Starts a worker on a new region named after `tag`, with extra
    /// environment, and waits until it beats.
    pub fn start(tag: &str, env: &[(&str, &str)]) -> Worker {
        let region = std::env::temp_dir().join(format!("ava-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&region);
        let child = Command::new(env!("CARGO_BIN_EXE_testapi-worker"))
            .arg(&region)
            .arg(library_path())
            .envs(env.iter().copied())
            .spawn()
            .expect("start testapi-worker");
        let worker = Worker { child, region };
        for _ in 0..500 {
            if transport::Region::open(&worker.region).is_ok_and(|r| r.worker_heartbeat() > 0) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        worker
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.region);
    }
}
