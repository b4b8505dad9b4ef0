//! Unmodified `clinfo` through the guest library prints the same platforms,
//! devices and properties as `clinfo` run natively: loaded in place of the
//! ICD loader (`LD_PRELOAD`), and as an installable client driver under
//! the system's loader (ocl-icd), alone or beside the host's PoCL.

mod common;

use std::process::Command;
use std::time::Duration;

/// clinfo's output without the ICD loader section (loaded in place of the
/// loader, the guest library cannot answer the loader's own queries).
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
    assert_same(&platform_part(&n), &platform_part(&r));
    // The list form too.
    common::assert_clinfo_list_same(&mut stack);
    assert!(
        stack.log().contains("guest attached"),
        "the calls went through the worker"
    );
}

/// Panics at the first line where `n` and `r` differ.
fn assert_same(n: &str, r: &str) {
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
}

/// Runs `cmd` (clinfo) and returns its standard output; panics if it fails.
fn clinfo_output(what: &str, cmd: Command) -> String {
    let out = common::run_capture(cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        common::text(&out.stderr)
    );
    common::text(&out.stdout)
}

/// With only `ava.icd` in the loader's vendors directory, clinfo prints
/// exactly what it prints natively (where the only driver is PoCL), the
/// ICD loader's section included: the platform, its devices and every
/// property come from the worker, through the system's loader.
#[test]
fn clinfo_through_the_icd_loader_equals_native() {
    let stack = common::Stack::start("clinfo-icd");
    let vendors = common::icd_vendors_dir("clinfo", false);
    let native = clinfo_output("native clinfo", Command::new("clinfo"));
    let remote = clinfo_output(
        "clinfo through ava.icd",
        stack.remote_icd("clinfo", &vendors),
    );
    assert!(native.contains("ICD loader properties"), "{native}");
    assert!(
        native.contains("Number of platforms                               1"),
        "{native}"
    );
    assert_same(&native, &remote);
    assert!(
        stack.log().contains("guest attached"),
        "the calls went through the worker:\n{}",
        stack.log()
    );
}

/// With `ava.icd` beside the host's `pocl.icd`, the loader lists both
/// platforms: the remoted one and the native one, each with its device and
/// the same properties, and an OpenCL program on the loader works with
/// either (the sample takes the first) as it does natively.
#[test]
fn the_remoted_platform_sits_beside_the_native_one() {
    let stack = common::Stack::start("clinfo-icd-both");
    let vendors = common::icd_vendors_dir("both", true);
    let native = clinfo_output("native clinfo -l", {
        let mut c = Command::new("clinfo");
        c.arg("-l");
        c
    });
    let both = clinfo_output("clinfo -l with both drivers", {
        let mut c = stack.remote_icd("clinfo", &vendors);
        c.arg("-l");
        c
    });
    let platforms = |s: &str| s.lines().filter(|l| l.starts_with("Platform #")).count();
    assert_eq!(platforms(&native), 1, "{native}");
    assert_eq!(platforms(&both), 2, "two platforms:\n{both}");
    // Each platform line and device line of the native listing, twice.
    for line in native.lines() {
        let shape = line.split_once(':').map_or(line, |(_, rest)| rest);
        assert_eq!(
            both.lines().filter(|l| l.ends_with(shape)).count(),
            2,
            "{line:?} twice in:\n{both}"
        );
    }
    let full = clinfo_output(
        "clinfo with both drivers",
        stack.remote_icd("clinfo", &vendors),
    );
    assert!(
        full.contains("Number of platforms                               2"),
        "{full}"
    );
    assert!(
        stack.log().contains("guest attached"),
        "the remoted platform's calls went through the worker"
    );
}
