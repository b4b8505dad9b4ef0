//! The socket baseline of `ava-bench opencl` end to end: for TCP and for a
//! Unix socket, the benchmark starts a real worker, runs the guest
//! library's small call natively, over the rings, and through the socket
//! bridge pair (guest side and worker side, two processes) to the same
//! worker, and writes each figure with its baseline. A bridge that drops
//! or garbles a message fails the call, and the benchmark with it.
//!
//! Needs the workspace built (`cargo build --workspace`): the worker and
//! the guest library are found beside this package's binary.

use std::process::Command;

#[test]
fn small_calls_cross_both_socket_bridges_to_a_real_worker() {
    let dir = tempfile::tempdir().unwrap();
    for transport in ["tcp", "unix"] {
        let json = dir.path().join(format!("{transport}.json"));
        let out = Command::new(env!("CARGO_BIN_EXE_ava-bench"))
            .args(["opencl", "--quick", "--transport", transport, "--json"])
            .arg(&json)
            .output()
            .expect("run ava-bench");
        assert!(
            out.status.success(),
            "ava-bench opencl --transport {transport} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let results = doc["results"].as_array().expect("a list of results");
        let find = |name: &str| {
            results
                .iter()
                .find(|r| r["name"] == name)
                .unwrap_or_else(|| panic!("no {name} in {doc:#}"))
        };
        let over = find(&format!("query_remoted_{transport}"));
        assert!(over["value"].as_f64().unwrap() > 0.0, "{over}");
        assert_eq!(over["baseline"], "query_remoted", "{over}");
        assert!(over["ratio"].as_f64().is_some(), "{over}");
        // The bare socket round trip, measured in the same run.
        let rtt = find(&format!("{transport}_rtt_8B"));
        assert!(rtt["value"].as_f64().unwrap() > 0.0, "{rtt}");
        assert!(find("query_remoted")["value"].as_f64().unwrap() > 0.0);
        assert!(find("query_native")["value"].as_f64().unwrap() > 0.0);
    }
}
