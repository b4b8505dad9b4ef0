//! Helpers for tests that run a second process: the test binary re-executes
//! itself with `AVA_TEST_ROLE` set, running only the named test, which then
//! plays the other side.

use std::process::{Child, Command, Stdio};

/// The role this process plays, if it was started as a peer.
pub fn role() -> Option<String> {
    std::env::var("AVA_TEST_ROLE").ok()
}

/// Starts this test binary again as the peer `role` of test `test`.
pub fn spawn_peer(test: &str, role: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("AVA_TEST_ROLE", role)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn peer process")
}
