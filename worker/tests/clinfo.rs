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
    let stack = common::Stack::start("clinfo");
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
    let native = common::run_capture(
        {
            let mut c = Command::new("clinfo");
            c.arg("-l");
            c
        },
        Duration::from_secs(60),
    );
    let remote = common::run_capture(
        {
            let mut c = stack.remote("clinfo");
            c.arg("-l");
            c
        },
        Duration::from_secs(60),
    );
    // Both must succeed: two failed runs can print the same (nothing).
    assert!(
        native.status.success(),
        "native clinfo -l failed ({}):\n{}",
        native.status,
        common::text(&native.stderr)
    );
    assert!(
        remote.status.success(),
        "remoted clinfo -l failed ({}):\n{}\nworker log (tail):\n{}",
        remote.status,
        common::text(&remote.stderr),
        common::tail(&stack.log(), 30)
    );
    let (n, r) = (common::text(&native.stdout), common::text(&remote.stdout));
    assert!(
        n.contains("Platform #0"),
        "native clinfo -l lists nothing:\n{n}"
    );
    common::assert_same_lines("clinfo -l", &n, &r);
    assert!(
        stack.log().contains("guest attached"),
        "the calls went through the worker"
    );
}
