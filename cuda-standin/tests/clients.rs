//! Unmodified CUDA clients run on the stand-in, found as `libcuda.so.1`
//! through `LD_LIBRARY_PATH`: the cudarc client (built by
//! `cargo build -p ava-cuda-clients`) and the cuda-python client. Their
//! printed results must equal values computed here independently.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>`, found from the test binary (`target/<profile>/deps/..`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A directory holding `libcuda.so.1` and `libcuda.so` -> the stand-in.
fn driver_dir() -> tempfile::TempDir {
    let lib = target_dir().join("libava_cuda_standin.so");
    assert!(
        lib.exists(),
        "{} is missing: run `cargo build -p ava-cuda-standin`",
        lib.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["libcuda.so.1", "libcuda.so"] {
        std::os::unix::fs::symlink(&lib, dir.path().join(name)).expect("symlink");
    }
    dir
}

fn checksum(v: &[f32]) -> u64 {
    v.iter()
        .flat_map(|x| x.to_bits().to_le_bytes())
        .fold(0xcbf29ce484222325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        })
}

/// The clients' report line (Rust's `{:?}` and Python's `repr` agree on
/// these floats).
fn report(out: &mut String, name: &str, v: &[f32]) {
    let sum: f64 = v.iter().map(|x| *x as f64).sum();
    writeln!(
        out,
        "{name}: n={} sum={sum:.3} first={:?} last={:?} checksum={:016x}",
        v.len(),
        v[0],
        v[v.len() - 1],
        checksum(v)
    )
    .unwrap();
}

fn inputs(n: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..n).map(|i| i as f32 * 0.5).collect();
    let b = (0..n).map(|i| (n - i) as f32 * 0.25).collect();
    (a, b)
}

const DEVICE: &str = "ava stand-in (PTX on CPU, test double)";

#[test]
fn cudarc_client_results() {
    let client = target_dir().join("cudarc-client");
    assert!(
        client.exists(),
        "{} is missing: run `cargo build -p ava-cuda-clients`",
        client.display()
    );
    let dir = driver_dir();
    let out = Command::new(&client)
        .arg(repo().join("samples/cuda/kernels.ptx"))
        .env("LD_LIBRARY_PATH", dir.path())
        .output()
        .expect("run cudarc-client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cudarc-client failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    const N: usize = 4096;
    let (a, b) = inputs(N);
    let c: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let y: Vec<f32> = a.iter().zip(&c).map(|(x, c)| 2.0 * x + c).collect();
    let z: Vec<f32> = b.iter().map(|x| x * 3.0 * 3.0).collect();
    let mut w = vec![0f32; N];
    w[..16].copy_from_slice(&a[..16]);
    let mut want =
        format!("device: {DEVICE}\ncompute capability: 8.0\nevents: elapsed time measured: true\n");
    report(&mut want, "vector_add", &c);
    report(&mut want, "saxpy", &y);
    report(&mut want, "scale_inplace x2", &z);
    report(&mut want, "partial copy", &w);
    want.push_str("ok\n");
    assert_eq!(stdout, want);
}

/// Installs cuda-python for /usr/bin/python3 if it is missing.
fn cuda_python() {
    let have = || {
        Command::new("/usr/bin/python3")
            .args(["-c", "import cuda.bindings.driver"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have() {
        return;
    }
    let status = Command::new("bash")
        .arg(repo().join("scripts/cuda-python.sh"))
        .status()
        .expect("run scripts/cuda-python.sh");
    assert!(
        status.success() && have(),
        "cuda-python (PyPI cuda-bindings 12.9) could not be installed for /usr/bin/python3 \
         by scripts/cuda-python.sh; the cuda-python client cannot run"
    );
}

#[test]
fn cuda_python_client_results() {
    cuda_python();
    let dir = driver_dir();
    let out = Command::new("/usr/bin/python3")
        .arg(repo().join("samples/cuda/cuda_python_client.py"))
        .env("LD_LIBRARY_PATH", dir.path())
        .output()
        .expect("run the cuda-python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cuda_python_client.py failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    const N: usize = 2048;
    let (a, b) = inputs(N);
    let c: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let y: Vec<f32> = a.iter().zip(&c).map(|(x, c)| 2.0 * x + c).collect();
    let mut want = format!(
        "driver version: 12080\ndevice: {DEVICE}\ncompute capability: 8.0\n\
         saxpy params (offset, size): [(0, 4), (8, 8), (16, 8), (24, 4)]\n\
         events: elapsed time measured: True\n"
    );
    report(&mut want, "vector_add", &c);
    report(&mut want, "saxpy", &y);
    report(&mut want, "memset", &vec![0f32; N]);
    want.push_str("memory: total >= free: True\nok\n");
    assert_eq!(stdout, want);
}
