//! Unmodified `clinfo` through the guest library prints the same platforms,
//! devices and properties as `clinfo` run natively.

mod common;

use std::process::Command;
use std::time::Duration;

/// clinfo's output without the ICD loader section (the guest library is not
/// an ICD loader, so clinfo cannot query loader properties through it).
fn platform_part(out: &str) -> String {
    out.split("\nICD loader properties")
        .next()
        .unwrap_or(out)
        .trim_end()
        .to_string()
}

#[test]
fn clinfo_remoted_equals_native() {
    let mut stack = common::Stack::start("clinfo");
    let native = common::run_capture(Command::new("clinfo"), Duration::from_secs(60));
    assert!(
        native.status.success(),
        "native clinfo failed ({}):\n{}",
        native.status,
        common::text(&native.stderr)
    );
    let remote = common::run_capture(stack.remote("clinfo"), Duration::from_secs(120));
    assert!(
        remote.status.success(),
        "remoted clinfo failed: {}",
        String::from_utf8_lossy(&remote.stderr)
    );
    let (n, r) = (
        String::from_utf8_lossy(&native.stdout).into_owned(),
        String::from_utf8_lossy(&remote.stdout).into_owned(),
    );
    assert!(
        n.contains("Number of platforms") && n.contains("Device Name"),
        "{n}"
    );
    let (n, r) = (platform_part(&n), platform_part(&r));
    if n != r {
        for (i, (a, b)) in n.lines().zip(r.lines()).enumerate() {
            if a != b {
                panic!("line {i} differs:\nnative: {a}\nremote: {b}");
            }
        }
        panic!(
            "outputs differ in length: {} vs {} lines",
            n.lines().count(),
            r.lines().count()
        );
    }
    // The list form too.
    common::assert_clinfo_list_same(&mut stack);
    assert!(
        stack.log().contains("guest attached"),
        "the calls went through the worker"
    );
}
