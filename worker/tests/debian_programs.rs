//! Unmodified programs from Debian through the guest library, beyond
//! clinfo: a PyOpenCL script (`samples/opencl/pyopencl_demo.py`, run by
//! Debian's `/usr/bin/python3` with `python3-pyopencl`) and `clpeak`.
//!
//! These tests install nothing: they need the Debian packages
//! `python3-pyopencl python3-numpy` and `clpeak`, and fail with a clear
//! message when they are missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Debian's interpreter: the one `python3-pyopencl` installs into.
const PYTHON: &str = "/usr/bin/python3";

fn demo_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/opencl/pyopencl_demo.py")
}

fn require_pyopencl() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import pyopencl, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{PYTHON} cannot import pyopencl and numpy: install the Debian packages \
         `python3-pyopencl python3-numpy` (apt-get install -y python3-pyopencl python3-numpy)"
    );
}

/// A fresh, empty directory for PyOpenCL's compiler cache.
fn fresh_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ava-pyopencl-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("cache dir");
    d
}

/// Runs the demo natively and remoted, each with its own empty PyOpenCL
/// cache (so both take the same path: build from source, then save the
/// binaries), and with `extra_env` set.
fn pyopencl_both(tag: &str, extra_env: &[(&str, &str)]) {
    pyopencl_script_both(
        tag,
        &demo_script(),
        extra_env,
        &[
            "device: ",
            "vecadd: n=1048576 mismatches=0",
            "reduction sum(a): ",
            "reductions match host: yes",
        ],
    );
}

/// Runs `script` natively and remoted, each with its own empty PyOpenCL
/// cache, with `extra_env` set; both must print each of `expect`, and the
/// same lines.
fn pyopencl_script_both(tag: &str, script: &Path, extra_env: &[(&str, &str)], expect: &[&str]) {
    require_pyopencl();
    let mut stack = common::Stack::start(tag);
    let name = script.file_name().unwrap().to_string_lossy().into_owned();
    let cmd = |mut c: Command, cache: &Path| {
        c.arg(script).env("XDG_CACHE_HOME", cache);
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c
    };
    let (nc, rc) = (
        fresh_dir(&format!("{tag}-native")),
        fresh_dir(&format!("{tag}-remote")),
    );
    let (native, remote) = common::run_both(
        tag,
        cmd(Command::new(PYTHON), &nc),
        Duration::from_secs(300),
        cmd(stack.remote(PYTHON), &rc),
        Duration::from_secs(400),
    );
    let _ = std::fs::remove_dir_all(&nc);
    let _ = std::fs::remove_dir_all(&rc);

    let n = common::text(&native.stdout);
    assert!(
        native.status.success(),
        "native {name} failed ({}):\n{n}\n{}",
        native.status,
        common::tail(&common::text(&native.stderr), 40)
    );
    for e in expect {
        assert!(n.contains(e), "native output lacks {e:?}:\n{n}");
    }
    if !remote.status.success() {
        panic!("{}", common::remote_failure(&mut stack, &name, &remote));
    }
    common::assert_same_lines(&name, &n, &common::text(&remote.stdout));
}

/// PyOpenCL's higher-level features (`samples/opencl/pyopencl_features.py`):
/// element-wise kernels, inclusive and exclusive scans, array arithmetic,
/// slices and dot products, `clrandom`, a radix sort, mapped buffers and
/// shared virtual memory,
/// each checked against numpy: remoted equals native.
#[test]
fn pyopencl_features_remoted_equal_native() {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/opencl/pyopencl_features.py");
    pyopencl_script_both(
        "pyfeatures",
        &script,
        &[],
        &[
            "elementwise: True",
            "inclusive scan: True",
            "exclusive scan: True",
            "array arithmetic: True",
            "array dot: True",
            "random repeatable: True",
            "radix sort: True",
            "mapped buffer: True",
            "shared virtual memory: True",
            "done",
        ],
    );
}

/// PyOpenCL as installed, with its compiler cache (which reads program
/// binaries back with `clGetProgramInfo(CL_PROGRAM_BINARIES)` after a build).
#[test]
fn pyopencl_remoted_equals_native() {
    pyopencl_both("pyopencl", &[]);
}

/// PyOpenCL without its compiler cache (`PYOPENCL_NO_CACHE`): no program
/// binaries are read back.
#[test]
fn pyopencl_no_cache_remoted_equals_native() {
    pyopencl_both("pyopencl-nocache", &[("PYOPENCL_NO_CACHE", "1")]);
}

/// clpeak's lines with the measured numbers blanked: everything after the
/// device header whose value is a number.
fn clpeak_shape(out: &str) -> String {
    let mut lines = Vec::new();
    let mut header = true;
    for l in out.lines() {
        if l.trim_start().starts_with("Clock frequency") {
            header = false;
            lines.push(l.to_string());
            continue;
        }
        match l.split_once(':') {
            Some((k, v))
                if !header
                    && v.split_whitespace()
                        .next()
                        .is_some_and(|w| w.parse::<f64>().is_ok()) =>
            {
                lines.push(format!("{k}: <number>"))
            }
            _ => lines.push(l.to_string()),
        }
    }
    lines.join("\n")
}

/// `clpeak` (a short run: kernel launch latency and single-precision
/// compute) exits 0 remotely, prints the device and the same result lines
/// as natively, with its measured numbers blanked.
#[test]
fn clpeak_runs_remoted() {
    let have = Command::new("clpeak")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have,
        "clpeak is not installed: install the Debian package `clpeak` (apt-get install -y clpeak)"
    );
    let stack = common::Stack::start("clpeak");
    let args = ["-p", "0", "-d", "0", "--kernel-latency", "--compute-sp"];
    let mut native = Command::new("clpeak");
    native.args(args);
    let mut remote = stack.remote("clpeak");
    remote.args(args);
    let (native, remote) = common::run_both(
        "clpeak",
        native,
        Duration::from_secs(300),
        remote,
        Duration::from_secs(400),
    );
    let (n, r) = (common::text(&native.stdout), common::text(&remote.stdout));
    assert!(native.status.success(), "native clpeak failed:\n{n}");
    assert!(
        n.contains("Kernel launch latency") && n.contains("float16"),
        "native clpeak output:\n{n}"
    );
    assert!(
        remote.status.success(),
        "remoted clpeak failed ({}):\n{r}\n{}",
        remote.status,
        common::tail(&common::text(&remote.stderr), 40)
    );
    let device = n
        .lines()
        .find(|l| l.trim_start().starts_with("Device:"))
        .expect("native device line");
    assert!(
        r.contains(device),
        "remoted clpeak does not print `{}`:\n{r}",
        device.trim()
    );
    // clpeak prints "Build Log: ..." and skips the device's tests when
    // building its kernels throws.
    if let Some(l) = r.lines().find(|l| l.contains("Build Log:")) {
        let rejected: Vec<String> = stack
            .log()
            .lines()
            .filter(|l| l.contains("rejected"))
            .map(str::to_owned)
            .collect();
        panic!(
            "remoted clpeak could not build its kernels (it skipped the device's tests):\n{}...\nworker: calls rejected:\n{}",
            l.chars().take(200).collect::<String>(),
            rejected.join("\n")
        );
    }
    common::assert_same_lines(
        "clpeak (numbers blanked)",
        &clpeak_shape(&n),
        &clpeak_shape(&r),
    );
    assert!(
        stack.log().contains("guest attached"),
        "the calls went through the worker"
    );
}

/// Unmodified `clpeak` with all of its tests (no options): every test runs
/// remoted — the transfer tests move 512 MiB buffers (larger than the
/// channel's arena and the region's heap: in pieces, and mapped through the
/// guest library's memory) — and prints the same lines as natively, with
/// its measured numbers blanked.
#[test]
fn clpeak_with_all_tests_runs_remoted() {
    let stack = common::Stack::start("clpeak-all");
    let (native, remote) = common::run_both(
        "clpeak (all tests)",
        Command::new("clpeak"),
        Duration::from_secs(600),
        stack.remote("clpeak"),
        Duration::from_secs(900),
    );
    let (n, r) = (common::text(&native.stdout), common::text(&remote.stdout));
    assert!(native.status.success(), "native clpeak failed:\n{n}");
    assert!(
        remote.status.success(),
        "remoted clpeak failed ({}):\n{r}\n{}",
        remote.status,
        common::tail(&common::text(&remote.stderr), 40)
    );
    for line in [
        "enqueueWriteBuffer non-blocking",
        "enqueueMapBuffer(for read)",
        "enqueueUnmap(after write)",
        "Kernel launch latency",
    ] {
        assert!(r.contains(line), "remoted clpeak lacks {line:?}:\n{r}");
    }
    assert!(!r.contains("Tests skipped"), "{r}");
    common::assert_same_lines(
        "clpeak, all tests (numbers blanked)",
        &clpeak_shape(&n),
        &clpeak_shape(&r),
    );
}

/// PyOpenCL with a `CL_MEM_USE_HOST_PTR` buffer
/// (`samples/opencl/pyopencl_host_ptr.py`): its host array is the program's
/// own array (remoted, it used to be an address in the worker, and reading
/// it crashed), and after a kernel and a map the results are in it.
#[test]
fn pyopencl_host_array_remoted_equals_native() {
    require_pyopencl();
    let stack = common::Stack::start("pyhostptr");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/opencl/pyopencl_host_ptr.py");
    let mut native = Command::new(PYTHON);
    native.arg(&script);
    let mut remote = stack.remote(PYTHON);
    remote.arg(&script);
    let (native, remote) = common::run_both(
        "pyopencl host array",
        native,
        Duration::from_secs(300),
        remote,
        Duration::from_secs(300),
    );
    let (n, r) = (common::text(&native.stdout), common::text(&remote.stdout));
    assert!(native.status.success(), "native: {n}");
    assert!(
        remote.status.success(),
        "remoted ({}): {r}\n{}",
        remote.status,
        common::tail(&common::text(&remote.stderr), 30)
    );
    for line in [
        "host array is the program's: True",
        "results in the program's array: True",
        "done",
    ] {
        assert!(
            n.contains(line) && r.contains(line),
            "{line:?}\nnative:\n{n}\nremoted:\n{r}"
        );
    }
    common::assert_same_lines("pyopencl host array", &n, &r);
}
