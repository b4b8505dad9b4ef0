//! `ava-bench cuda`: the same CUDA driver calls made natively (the host's
//! `libcuda.so.1`, or the stand-in test double where no GPU is) and remoted
//! (`libava_cuda.so` over a region served by a real `ava-worker` on the same
//! driver), in one run, one beside the other.
//!
//! On the stand-in the device is a PTX interpreter, so the figures measure
//! the remoting path's own cost per call (remoted minus native), not a GPU.

use std::ffi::{CStr, CString, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;

remoting::generated! {
    /// The CUDA function table generated from the specification.
    mod cuda = "cuda_table.rs";
}

use crate::opencl_bench::{Worker, sibling};
use crate::report::{BenchResult, compare};

type Ptr = *mut c_void;

/// The CUDA entry points of one library, in the function table generated
/// from the CUDA specification.
struct Cu {
    api: cuda::Api,
    _lib: libloading::Library,
}

impl Cu {
    fn load(path: &Path) -> anyhow::Result<Cu> {
        // SAFETY: loading a CUDA driver library runs its initialisers, as
        // any CUDA program does.
        let lib = unsafe { libloading::Library::new(path) }
            .with_context(|| path.display().to_string())?;
        Ok(Cu {
            api: cuda::Api::load(&lib),
            _lib: lib,
        })
    }
}

/// `$cu`'s `$f`, or an error naming the function the library lacks.
macro_rules! cu {
    ($cu:expr, $f:ident) => {
        $cu.api.$f.context(stringify!($f))?
    };
}

fn check(what: &str, rc: i32) -> anyhow::Result<()> {
    if rc != 0 {
        bail!("{what} failed with CUDA error {rc}");
    }
    Ok(())
}

/// A context made current, the fixtures' module, its empty kernel, and the
/// device's name.
struct Setup {
    empty: Ptr,
    name: String,
}

const PTX: &str = include_str!("../../samples/cuda/kernels.ptx");
/// Sizes of the bandwidth measurements.
const SIZES: [usize; 3] = [64 << 10, 1 << 20, 16 << 20];

fn setup(cu: &Cu) -> anyhow::Result<Setup> {
    // SAFETY: every pointer passed points to a live local of the right type.
    unsafe {
        check("cuInit", cu!(cu, cuInit)(0))?;
        let mut dev = 0;
        check("cuDeviceGet", cu!(cu, cuDeviceGet)(&mut dev, 0))?;
        let mut name = [0u8; 256];
        check(
            "cuDeviceGetName",
            cu!(cu, cuDeviceGetName)(name.as_mut_ptr().cast(), 256, dev),
        )?;
        let mut ctx: Ptr = std::ptr::null_mut();
        check(
            "cuDevicePrimaryCtxRetain",
            cu!(cu, cuDevicePrimaryCtxRetain)(&mut ctx, dev),
        )?;
        check("cuCtxSetCurrent", cu!(cu, cuCtxSetCurrent)(ctx))?;
        let ptx = CString::new(PTX)?;
        let mut module: Ptr = std::ptr::null_mut();
        check(
            "cuModuleLoadData",
            cu!(cu, cuModuleLoadData)(&mut module, ptx.as_ptr().cast()),
        )?;
        let mut empty: Ptr = std::ptr::null_mut();
        let kname = CString::new("empty")?;
        check(
            "cuModuleGetFunction",
            cu!(cu, cuModuleGetFunction)(&mut empty, module, kname.as_ptr()),
        )?;
        Ok(Setup {
            empty,
            name: CStr::from_bytes_until_nul(&name)?
                .to_string_lossy()
                .into_owned(),
        })
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("bounds")
}

fn time(n: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Histogram<u64>> {
    let mut h = histogram();
    for i in 0..n + n / 10 {
        let t = Instant::now();
        f()?;
        if i >= n / 10 {
            h.record((t.elapsed().as_nanos() as u64).max(1))?;
        }
    }
    Ok(h)
}

/// One launch of the empty kernel (one thread) on the default stream.
fn launch(cu: &Cu, s: &Setup) -> anyhow::Result<()> {
    let null = std::ptr::null_mut();
    // SAFETY: the kernel takes no parameters; the stream is the default.
    check("cuLaunchKernel", unsafe {
        cu!(cu, cuLaunchKernel)(s.empty, 1, 1, 1, 1, 1, 1, 0, null, null.cast(), null.cast())
    })
}

fn synchronize(cu: &Cu) -> anyhow::Result<()> {
    // SAFETY: no arguments.
    check("cuCtxSynchronize", unsafe { cu!(cu, cuCtxSynchronize)() })
}

/// A small call: one device attribute.
fn query(cu: &Cu) -> anyhow::Result<()> {
    let mut v = 0;
    // SAFETY: `v` is a live local.
    check("cuDeviceGetAttribute", unsafe {
        cu!(cu, cuDeviceGetAttribute)(&mut v, 1, 0)
    })
}

/// Accumulated figures of one library over several rounds.
struct Acc {
    query: Histogram<u64>,
    launch_sync: Histogram<u64>,
    /// Throughput and bandwidth figures by name: amount and seconds.
    rates: Vec<(String, &'static str, f64, f64)>,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            query: histogram(),
            launch_sync: histogram(),
            rates: Vec::new(),
        }
    }

    fn add(&mut self, name: String, unit: &'static str, amount: f64, secs: f64) {
        match self.rates.iter_mut().find(|b| b.0 == name) {
            Some(b) => {
                b.2 += amount;
                b.3 += secs;
            }
            None => self.rates.push((name, unit, amount, secs)),
        }
    }

    fn results(&self, suffix: &str) -> Vec<BenchResult> {
        let mut out = vec![
            BenchResult::latency(&format!("query_{suffix}"), &self.query),
            BenchResult::latency(&format!("launch_sync_{suffix}"), &self.launch_sync),
        ];
        for (name, unit, amount, secs) in &self.rates {
            out.push(BenchResult::value(
                &format!("{name}_{suffix}"),
                unit,
                amount / secs,
            ));
        }
        out
    }
}

/// One round of the call measurements on one library.
fn measure_calls(
    cu: &Cu,
    s: &Setup,
    acc: &mut Acc,
    quick: bool,
    rounds: usize,
) -> anyhow::Result<()> {
    let (nq, nl, na) = if quick {
        (5_000, 1_000, 10_000)
    } else {
        (50_000, 10_000, 10_000)
    };
    acc.query.add(&time(nq / rounds, || query(cu))?)?;
    let h = time(nl / rounds, || {
        launch(cu, s)?;
        synchronize(cu)
    })?;
    acc.launch_sync.add(&h)?;
    // Asynchronous launches, then one synchronization.
    let n = na / rounds;
    let t = Instant::now();
    for _ in 0..n {
        launch(cu, s)?;
    }
    synchronize(cu)?;
    acc.add(
        "async_launches".into(),
        "launches/s",
        n as f64,
        t.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// One round of copies of every size, each way, from pageable and
/// page-locked memory.
fn measure_copies(
    cu: &Cu,
    dev: u64,
    pinned: *mut u8,
    acc: &mut Acc,
    quick: bool,
    rounds: usize,
) -> anyhow::Result<()> {
    let mut pageable = vec![7u8; SIZES[SIZES.len() - 1]];
    for size in SIZES {
        let reps =
            ((if quick { 128usize << 20 } else { 1usize << 30 }) / size / rounds).clamp(2, 4096);
        for (host, kind) in [(pageable.as_mut_ptr(), "pageable"), (pinned, "pinned")] {
            for dir in ["htod", "dtoh"] {
                let t = Instant::now();
                for _ in 0..reps {
                    // SAFETY: `host` holds the largest size; `dev` too.
                    let rc = unsafe {
                        if dir == "htod" {
                            cu!(cu, cuMemcpyHtoD_v2)(dev, host.cast(), size)
                        } else {
                            cu!(cu, cuMemcpyDtoH_v2)(host.cast(), dev, size)
                        }
                    };
                    check(dir, rc)?;
                }
                acc.add(
                    format!("{dir}_{kind}_{}", crate::transport_bench::size_name(size)),
                    "B/s",
                    (size * reps) as f64,
                    t.elapsed().as_secs_f64(),
                );
            }
        }
    }
    Ok(())
}

/// Device memory and page-locked host memory for the copies.
fn buffers(cu: &Cu) -> anyhow::Result<(u64, *mut u8)> {
    let max = SIZES[SIZES.len() - 1];
    let (mut dev, mut host) = (0u64, std::ptr::null_mut::<c_void>());
    // SAFETY: the outputs are live locals.
    unsafe {
        check("cuMemAlloc_v2", cu!(cu, cuMemAlloc_v2)(&mut dev, max))?;
        check(
            "cuMemAllocHost_v2",
            cu!(cu, cuMemAllocHost_v2)(&mut host, max),
        )?;
    }
    Ok((dev, host.cast()))
}

/// Runs the CUDA benchmark against `native_lib` (the worker's driver too).
pub fn run(quick: bool, native_lib: &str) -> anyhow::Result<Vec<BenchResult>> {
    let native_path = resolve(native_lib);
    let region = PathBuf::from(format!("/dev/shm/ava-bench-cuda-{}", std::process::id()));
    let _ = std::fs::remove_file(&region);
    let child = Command::new(sibling("ava-worker")?)
        .arg("--region")
        .arg(&region)
        .args([
            "--arena-size",
            "67108864",
            "--channels",
            "2",
            "--backends",
            "cuda",
        ])
        .arg("--cuda-lib")
        .arg(&native_path)
        .env("AVA_LOG", "warn")
        .spawn()
        .context("starting ava-worker")?;
    let _worker = Worker(child, region.clone());
    let start = Instant::now();
    while !transport::Region::open(&region).is_ok_and(|r| r.worker_heartbeat() > 0) {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(20),
            "the worker did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: single-threaded at this point; the guest library reads it on
    // its first call.
    unsafe { std::env::set_var("AVA_REGION", &region) };
    let native = Cu::load(&native_path)?;
    let ns = setup(&native)?;
    let remote = Cu::load(&sibling("libava_cuda.so")?)?;
    let rs = setup(&remote)?;
    let label = if ns.name.contains("stand-in") {
        "the CUDA stand-in (a PTX interpreter, test double): figures are the remoting path's own cost"
    } else {
        "a CUDA device"
    };
    eprintln!("device: {} ({label})", ns.name);
    // Native and remoted rounds alternate, so that a noisy neighbour
    // affects both alike. Launches first: the stand-in copies its device
    // memory into the interpreter at each launch, so large buffers come
    // after.
    let rounds = 4;
    let (mut na, mut ra) = (Acc::new(), Acc::new());
    for r in 0..rounds {
        eprintln!(
            "[calls {}/{rounds}] native ({native_lib}), then remoted (over {})",
            r + 1,
            region.display()
        );
        measure_calls(&native, &ns, &mut na, quick, rounds)?;
        measure_calls(&remote, &rs, &mut ra, quick, rounds)?;
    }
    let (nd, nh) = buffers(&native)?;
    let (rd, rh) = buffers(&remote)?;
    for r in 0..rounds {
        eprintln!("[copies {}/{rounds}] native, then remoted", r + 1);
        measure_copies(&native, nd, nh, &mut na, quick, rounds)?;
        measure_copies(&remote, rd, rh, &mut ra, quick, rounds)?;
    }
    let mut results = na.results("native");
    results.extend(ra.results("remoted"));
    let names: Vec<String> = results
        .iter()
        .filter_map(|r| r.name.strip_suffix("_remoted").map(str::to_string))
        .collect();
    for n in names {
        compare(
            &mut results,
            &format!("{n}_remoted"),
            &format!("{n}_native"),
        );
    }
    let value = |n: &str| results.iter().find(|r| r.name == n).map(|r| r.value);
    let sync = (value("launch_sync_remoted"), value("launch_sync_native"));
    let tput = (
        value("async_launches_remoted"),
        value("async_launches_native"),
    );
    if let (Some(r), Some(n)) = sync {
        results.push(BenchResult::value("launch_sync_overhead", "ns", r - n));
    }
    if let (Some(r), Some(n)) = tput {
        results.push(BenchResult::value(
            "async_launch_overhead",
            "ns",
            1e9 / r - 1e9 / n,
        ));
    }
    Ok(results)
}

/// `lib` as a path: a bare name (`libcuda.so.1`) is passed to the worker
/// as it is, a relative path is made absolute.
fn resolve(lib: &str) -> PathBuf {
    let p = PathBuf::from(lib);
    if p.components().count() > 1 && p.is_relative() {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    } else {
        p
    }
}
