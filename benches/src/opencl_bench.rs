//! `ava-bench opencl`: the same OpenCL calls made natively (the host's
//! `libOpenCL.so.1`) and remoted (`libava_opencl.so` over a region served by
//! a real `ava-worker`), in one run, one beside the other; and the small
//! call over TCP and a Unix socket too, through a socket bridge to the same
//! worker (see [`crate::socket_bridge`]).

use std::ffi::{CString, c_void};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;

remoting::generated! {
    /// The OpenCL function table generated from the specification.
    mod opencl = "opencl_table.rs";
}

use opencl::Api;

use crate::report::{BenchResult, compare};
use crate::socket_bridge::{self, Bridge, Kind};

type Id = *mut c_void;

/// The OpenCL entry points of one library, in the function table generated
/// from the OpenCL specification (`opencl::Api`, `Side::Table`).
struct Cl {
    api: Api,
    _lib: libloading::Library,
}

impl Cl {
    fn load(path: &Path) -> anyhow::Result<Cl> {
        // SAFETY: loading an OpenCL library runs its initialisers, as any
        // OpenCL program does.
        let lib = unsafe { libloading::Library::new(path) }
            .with_context(|| path.display().to_string())?;
        Ok(Cl {
            api: Api::load(&lib),
            _lib: lib,
        })
    }
}

/// `$cl`'s `$f`, or an error naming the function the library lacks.
macro_rules! cl {
    ($cl:expr, $f:ident) => {
        $cl.api.$f.context(stringify!($f))?
    };
}

fn check(what: &str, rc: i32) -> anyhow::Result<()> {
    if rc != 0 {
        bail!("{what} failed with OpenCL error {rc}");
    }
    Ok(())
}

/// A device, context, queue, a trivial kernel and a buffer.
struct Setup {
    device: Id,
    queue: Id,
    kernel: Id,
    buffer: Id,
}

const MAX_SIZE: usize = 16 << 20;
/// Sizes of the bandwidth measurements.
const SIZES: [usize; 5] = [4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20];
const CL_DEVICE_TYPE_ALL: u64 = 0xFFFF_FFFF;
const CL_DEVICE_MAX_COMPUTE_UNITS: u32 = 0x1002;
const CL_MEM_READ_WRITE: u64 = 1;
const KERNEL: &str = "__kernel void touch(__global int* a) { a[get_global_id(0)] += 1; }";

/// The first device of the first platform.
fn first_device(cl: &Cl) -> anyhow::Result<Id> {
    // SAFETY: every pointer passed points to a live local of the right type.
    unsafe {
        let mut platform: Id = std::ptr::null_mut();
        check(
            "clGetPlatformIDs",
            cl!(cl, clGetPlatformIDs)(1, &mut platform, std::ptr::null_mut()),
        )?;
        let mut device: Id = std::ptr::null_mut();
        check(
            "clGetDeviceIDs",
            cl!(cl, clGetDeviceIDs)(
                platform,
                CL_DEVICE_TYPE_ALL,
                1,
                &mut device,
                std::ptr::null_mut(),
            ),
        )?;
        Ok(device)
    }
}

fn setup(cl: &Cl) -> anyhow::Result<Setup> {
    let mut err = 0;
    let device = first_device(cl)?;
    // SAFETY: every pointer passed points to a live local of the right type.
    unsafe {
        let ctx = cl!(cl, clCreateContext)(
            std::ptr::null(),
            1,
            &device,
            None,
            std::ptr::null_mut(),
            &mut err,
        );
        check("clCreateContext", err)?;
        let queue = cl!(cl, clCreateCommandQueue)(ctx, device, 0, &mut err);
        check("clCreateCommandQueue", err)?;
        let src = CString::new(KERNEL)?;
        let mut p = src.as_ptr();
        let program =
            cl!(cl, clCreateProgramWithSource)(ctx, 1, &mut p, std::ptr::null(), &mut err);
        check("clCreateProgramWithSource", err)?;
        check(
            "clBuildProgram",
            cl!(cl, clBuildProgram)(
                program,
                1,
                &device,
                std::ptr::null(),
                None,
                std::ptr::null_mut(),
            ),
        )?;
        let name = CString::new("touch")?;
        let kernel = cl!(cl, clCreateKernel)(program, name.as_ptr(), &mut err);
        check("clCreateKernel", err)?;
        let buffer = cl!(cl, clCreateBuffer)(
            ctx,
            CL_MEM_READ_WRITE,
            MAX_SIZE,
            std::ptr::null_mut(),
            &mut err,
        );
        check("clCreateBuffer", err)?;
        check(
            "clSetKernelArg",
            cl!(cl, clSetKernelArg)(kernel, 0, size_of::<Id>(), (&buffer as *const Id).cast()),
        )?;
        Ok(Setup {
            device,
            queue,
            kernel,
            buffer,
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

/// Accumulated figures of one library over several rounds.
struct Acc {
    query: Histogram<u64>,
    kernel: Histogram<u64>,
    /// Bandwidth figures by name: bytes moved and seconds taken.
    bw: Vec<(String, u64, f64)>,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            query: histogram(),
            kernel: histogram(),
            bw: Vec::new(),
        }
    }

    fn add_bw(&mut self, name: String, bytes: u64, secs: f64) {
        match self.bw.iter_mut().find(|b| b.0 == name) {
            Some(b) => {
                b.1 += bytes;
                b.2 += secs;
            }
            None => self.bw.push((name, bytes, secs)),
        }
    }

    fn results(&self, suffix: &str) -> Vec<BenchResult> {
        let mut out = vec![
            BenchResult::latency(&format!("query_{suffix}"), &self.query),
            BenchResult::latency(&format!("kernel_{suffix}"), &self.kernel),
        ];
        for (name, bytes, secs) in &self.bw {
            out.push(BenchResult::value(
                &format!("{name}_{suffix}"),
                "B/s",
                *bytes as f64 / secs,
            ));
        }
        out
    }
}

/// `n` device queries (a small call), timed one by one.
fn time_queries(cl: &Cl, s: &Setup, n: usize) -> anyhow::Result<Histogram<u64>> {
    time(n, || query(cl, s))
}

/// The small call every benchmark times: one device query.
fn query(cl: &Cl, s: &Setup) -> anyhow::Result<()> {
    query_device(cl, s.device)
}

/// [`query`] of `device`.
fn query_device(cl: &Cl, device: Id) -> anyhow::Result<()> {
    let mut units = 0u32;
    // SAFETY: `units` is a live u32, its size is passed.
    check("clGetDeviceInfo", unsafe {
        cl!(cl, clGetDeviceInfo)(
            device,
            CL_DEVICE_MAX_COMPUTE_UNITS,
            4,
            (&mut units as *mut u32).cast(),
            std::ptr::null_mut(),
        )
    })
}

/// `n` launches of the one-item kernel, each with its `clFinish`, timed
/// one by one.
fn time_launches(cl: &Cl, s: &Setup, n: usize) -> anyhow::Result<Histogram<u64>> {
    let global = 1usize;
    time(n, || {
        // SAFETY: `global` lives across the call; no events.
        unsafe {
            check(
                "clEnqueueNDRangeKernel",
                cl!(cl, clEnqueueNDRangeKernel)(
                    s.queue,
                    s.kernel,
                    1,
                    std::ptr::null(),
                    &global,
                    std::ptr::null(),
                    0,
                    std::ptr::null(),
                    std::ptr::null_mut(),
                ),
            )?;
            check("clFinish", cl!(cl, clFinish)(s.queue))
        }
    })
}

/// One round of every measurement on one library, added to `acc`.
fn measure(cl: &Cl, s: &Setup, acc: &mut Acc, quick: bool, rounds: usize) -> anyhow::Result<()> {
    let (nq, nk) = if quick { (5_000, 500) } else { (50_000, 5_000) };
    let (nq, nk) = (nq / rounds, nk / rounds);
    acc.query.add(&time_queries(cl, s, nq)?)?;
    let h = time_launches(cl, s, nk)?;
    acc.kernel.add(&h)?;
    let mut host = vec![7u8; MAX_SIZE];
    for size in SIZES {
        let reps = reps(size, quick, rounds);
        for (dir, name) in [(0, "write"), (1, "read")] {
            let t = Instant::now();
            for _ in 0..reps {
                // SAFETY: `host` holds MAX_SIZE >= size bytes; blocking calls.
                let rc = unsafe {
                    if dir == 0 {
                        cl!(cl, clEnqueueWriteBuffer)(
                            s.queue,
                            s.buffer,
                            1,
                            0,
                            size,
                            host.as_ptr().cast(),
                            0,
                            std::ptr::null(),
                            std::ptr::null_mut(),
                        )
                    } else {
                        cl!(cl, clEnqueueReadBuffer)(
                            s.queue,
                            s.buffer,
                            1,
                            0,
                            size,
                            host.as_mut_ptr().cast(),
                            0,
                            std::ptr::null(),
                            std::ptr::null_mut(),
                        )
                    }
                };
                check(name, rc)?;
            }
            // SAFETY: a valid queue.
            check("clFinish", unsafe { cl!(cl, clFinish)(s.queue) })?;
            acc.add_bw(
                format!("{name}_bw_{}", crate::transport_bench::size_name(size)),
                (size * reps) as u64,
                t.elapsed().as_secs_f64(),
            );
        }
    }
    Ok(())
}

/// One round of plain `memcpy`s of the bandwidth sizes, as many as
/// [`measure`] makes of each read and write.
fn memcpy_round(acc: &mut Acc, src: &[u8], dst: &mut [u8], quick: bool, rounds: usize) {
    for size in SIZES {
        let reps = reps(size, quick, rounds);
        acc.add_bw(
            format!("memcpy_bw_{}", crate::transport_bench::size_name(size)),
            (size * reps) as u64,
            crate::transport_bench::memcpy_secs_of(&src[..size], &mut dst[..size], reps),
        );
    }
}

/// Transfers of `size` bytes per bandwidth measurement in one round.
fn reps(size: usize, quick: bool, rounds: usize) -> usize {
    ((if quick { 256usize << 20 } else { 2usize << 30 }) / size / rounds).clamp(4, 20_000)
}

/// Kernel launch latency measured by a separate C program
/// (`samples/opencl/launch_latency.c`), run natively and through the guest
/// library in alternating rounds, each in its own process: the in-process
/// figures above share one process between two OpenCL runtimes.
fn launch_latency(region: &Path, quick: bool) -> anyhow::Result<Vec<BenchResult>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/opencl/launch_latency.c");
    let exe = std::env::temp_dir().join(format!("ava-launch-latency-{}", std::process::id()));
    let st = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-lOpenCL")
        .status()
        .context("compiling launch_latency.c (cc)")?;
    anyhow::ensure!(st.success(), "compiling {} failed", src.display());
    let n = if quick { "1000" } else { "5000" };
    let guestlib = sibling("libava_opencl.so")?;
    let run = |remote: bool| -> anyhow::Result<(f64, f64)> {
        let mut c = Command::new(&exe);
        c.arg(n);
        if remote {
            c.env("AVA_REGION", region).env("LD_PRELOAD", &guestlib);
        } else {
            c.env_remove("LD_PRELOAD");
        }
        let out = c.output().context("running launch_latency")?;
        let text = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(out.status.success(), "launch_latency failed: {text}");
        let field = |k: &str| -> anyhow::Result<f64> {
            let mut w = text.split_whitespace();
            while let Some(x) = w.next() {
                if x == k {
                    return Ok(w.next().context("value")?.parse()?);
                }
            }
            anyhow::bail!("no {k} in {text}")
        };
        Ok((field("p50_us")?, field("enqueue_mean_us")?))
    };
    let rounds = 3;
    let (mut native, mut remote) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        eprintln!(
            "[launch latency {}/{rounds}] native, then remoted (separate processes)",
            r + 1
        );
        native.push(run(false)?);
        remote.push(run(true)?);
    }
    let _ = std::fs::remove_file(&exe);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let np50 = median(&mut native.iter().map(|x| x.0 * 1e3).collect());
    let rp50 = median(&mut remote.iter().map(|x| x.0 * 1e3).collect());
    let nenq = median(&mut native.iter().map(|x| x.1 * 1e3).collect());
    let renq = median(&mut remote.iter().map(|x| x.1 * 1e3).collect());
    let mut out = vec![
        BenchResult::value("launch_finish_native", "ns", np50),
        BenchResult::value("launch_finish_remoted", "ns", rp50),
        BenchResult::value("enqueue_native", "ns", nenq),
        BenchResult::value("enqueue_remoted", "ns", renq),
        BenchResult::value("launch_overhead", "ns", rp50 - np50),
    ];
    compare(&mut out, "launch_finish_remoted", "launch_finish_native");
    compare(&mut out, "enqueue_remoted", "enqueue_native");
    Ok(out)
}

/// A guest of `ava-bench groups`: the guest library in this process (its
/// region in `AVA_REGION`), timing `queries` device queries and `launches`
/// kernel launches (each with its `clFinish`); prints their p50 in ns.
pub fn guest_role(queries: usize, launches: usize) -> anyhow::Result<()> {
    let remote = Cl::load(&sibling("libava_opencl.so")?)?;
    let s = setup(&remote)?;
    let q = time_queries(&remote, &s, queries)?;
    let k = time_launches(&remote, &s, launches)?;
    println!(
        "query_p50_ns {} launch_p50_ns {}",
        q.value_at_quantile(0.5),
        k.value_at_quantile(0.5)
    );
    Ok(())
}

pub(crate) struct Worker(pub(crate) Child, pub(crate) PathBuf);

impl Drop for Worker {
    fn drop(&mut self) {
        // Asked to stop first, so that it stops its executors and removes
        // its files; killed if it does not.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

pub(crate) fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.parent().context("exe dir")?.join(name);
    anyhow::ensure!(
        p.exists(),
        "{} not found (build it: cargo build --release -p ava-worker -p ava-guestlib)",
        p.display()
    );
    Ok(p)
}

/// Which transport carries the remoted small call besides the rings
/// (`ava-bench opencl --transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// The shared-memory rings alone: every figure, natively and remoted.
    Shm,
    /// The small call over TCP (through the socket bridge), beside the
    /// same call natively and over the rings; nothing else.
    Tcp,
    /// The small call over a Unix socket (through the socket bridge),
    /// beside the same call natively and over the rings; nothing else.
    Unix,
}

/// `n` device queries made by a guest process whose region is `region`
/// (a socket bridge's private one), timed one by one.
fn bridged_queries(region: &Path, n: usize) -> anyhow::Result<Histogram<u64>> {
    let out = socket_bridge::peer_command("query-guest", &[&n.to_string()])?
        .env("AVA_REGION", region)
        // Waiting for a reply as a socket client does, blocked: a short
        // spin, then asleep on the response ring's bell. A guest that
        // spins instead holds a core that the bridge's threads, the
        // worker and the socket need (this machine may have two).
        .env("AVA_WAIT", "idle")
        .output()
        .context("starting the bridged guest")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "the bridged guest failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = text
        .split_whitespace()
        .skip_while(|w| *w != "latencies_ns")
        .nth(1)
        .context("no latencies from the bridged guest")?;
    let mut h = histogram();
    for v in list.split(',') {
        h.record(v.parse()?)?;
    }
    Ok(h)
}

/// The guest of the socket baseline: the guest library in this process
/// (its region in `AVA_REGION`), timing `n` device queries one by one
/// after a tenth as many for warm-up; prints their latencies (ns). It
/// makes no other call than finding the device: nothing that moves bulk
/// data, which cannot cross a socket bridge.
pub fn query_guest_role(n: usize) -> anyhow::Result<()> {
    let remote = Cl::load(&sibling("libava_opencl.so")?)?;
    let device = first_device(&remote)?;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let t = Instant::now();
        query_device(&remote, device)?;
        let ns = t.elapsed().as_nanos() as u64;
        if i >= n / 10 {
            lat.push(ns.max(1).to_string());
        }
    }
    println!("latencies_ns {}", lat.join(","));
    Ok(())
}

/// Runs the OpenCL benchmark, with the small call also measured over TCP
/// and over a Unix socket.
pub fn run(quick: bool, native_lib: &str) -> anyhow::Result<Vec<BenchResult>> {
    run_with(quick, native_lib, None)
}

/// Runs the OpenCL benchmark. Without a `transport`, as [`run`] does;
/// with one, see [`Transport`].
pub fn run_with(
    quick: bool,
    native_lib: &str,
    transport: Option<Transport>,
) -> anyhow::Result<Vec<BenchResult>> {
    let sockets = match transport {
        None => vec![Kind::Tcp, Kind::Unix],
        Some(Transport::Shm) => vec![],
        Some(Transport::Tcp) => vec![Kind::Tcp],
        Some(Transport::Unix) => vec![Kind::Unix],
    };
    // One socket chosen: the small call only, natively, over the rings
    // (the baseline) and over that socket.
    let only_query = !matches!(transport, None | Some(Transport::Shm));
    let region = PathBuf::from(format!("/dev/shm/ava-bench-opencl-{}", std::process::id()));
    let _ = std::fs::remove_file(&region);
    // The bridges' worker side claims channels of its own.
    let channels = if sockets.is_empty() { "2" } else { "8" };
    let child = Command::new(sibling("ava-worker")?)
        .arg("--region")
        .arg(&region)
        .args(["--arena-size", "67108864", "--channels", channels])
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
    let native = Cl::load(Path::new(native_lib))?;
    let ns = setup(&native)?;
    let remote = Cl::load(&sibling("libava_opencl.so")?)?;
    let rs = setup(&remote)?;
    // Native and remoted rounds alternate, so that a noisy neighbour
    // affects both alike.
    let rounds = 4;
    let (mut na, mut ra, mut copies) = (Acc::new(), Acc::new(), Acc::new());
    let (src, mut dst) = (vec![7u8; MAX_SIZE], vec![1u8; MAX_SIZE]);
    // The socket baseline: per socket, a bridge pair, the small call
    // through it and the bare socket round trip.
    let bridges = sockets
        .iter()
        .map(|&k| Ok((k, Bridge::start(k, &region)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut over: Vec<(Histogram<u64>, Histogram<u64>)> =
        bridges.iter().map(|_| (histogram(), histogram())).collect();
    let nq = if quick { 5_000 } else { 50_000 } / rounds;
    let mut socket_failed: Vec<Option<String>> = bridges.iter().map(|_| None).collect();
    for r in 0..rounds {
        eprintln!(
            "[round {}/{rounds}] native ({native_lib}), then remoted (over {}){}",
            r + 1,
            region.display(),
            if sockets.is_empty() {
                ""
            } else {
                ", then small calls over sockets"
            }
        );
        if only_query {
            na.query.add(&time_queries(&native, &ns, nq)?)?;
            ra.query.add(&time_queries(&remote, &rs, nq)?)?;
        } else {
            measure(&native, &ns, &mut na, quick, rounds)?;
            measure(&remote, &rs, &mut ra, quick, rounds)?;
            memcpy_round(&mut copies, &src, &mut dst, quick, rounds);
        }
        for (((kind, bridge), (call, rtt)), failed) in
            bridges.iter().zip(&mut over).zip(&mut socket_failed)
        {
            if failed.is_some() {
                continue;
            }
            // A socket that fails loses its own figures, not the run's.
            let r = bridged_queries(&bridge.region, nq).and_then(|c| {
                call.add(&c)?;
                rtt.add(&socket_bridge::socket_rtt(*kind, 8, nq)?)?;
                Ok(())
            });
            if let Err(e) = r {
                eprintln!("the small call over {} failed: {e:#}", kind.name());
                *failed = Some(format!("{e:#}"));
            }
        }
    }
    drop(bridges);
    let mut results = if only_query {
        vec![
            BenchResult::latency("query_native", &na.query),
            BenchResult::latency("query_remoted", &ra.query),
        ]
    } else {
        let mut results = na.results("native");
        results.extend(ra.results("remoted"));
        // One plain memcpy of each size: the limit a single copy sets, which
        // the remoted in-place reads and writes approach.
        for (name, bytes, secs) in &copies.bw {
            results.push(BenchResult::value(name, "B/s", *bytes as f64 / secs));
        }
        results.extend(launch_latency(&region, quick)?);
        results
    };
    // Over a socket: the small call (ratio: socket over rings, the rings'
    // advantage), the bare round trip of 8 bytes (ratio: against the whole
    // call over the rings), and what the bridge adds to them (its two
    // extra ring round trips and the framing).
    for ((kind, (call, rtt)), failed) in sockets.iter().zip(&over).zip(&socket_failed) {
        let k = kind.name();
        if let Some(why) = failed {
            eprintln!("no figures over {k}: {why}");
            continue;
        }
        let (call_name, rtt_name) = (format!("query_remoted_{k}"), format!("{k}_rtt_8B"));
        results.push(BenchResult::latency(&call_name, call));
        compare(&mut results, &call_name, "query_remoted");
        results.push(BenchResult::latency(&rtt_name, rtt));
        compare(&mut results, &rtt_name, "query_remoted");
        let p50 = |n: &str| {
            results
                .iter()
                .find(|r| r.name == n)
                .map_or(0.0, |r| r.value)
        };
        let extra = p50(&call_name) - p50(&rtt_name) - p50("query_remoted");
        results.push(BenchResult::value(
            &format!("{k}_bridge_extra"),
            "ns",
            extra,
        ));
    }
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
    // Remoted kernel launch overhead, in ns, against the 2 µs goal.
    let p50 = |n: &str| results.iter().find(|r| r.name == n).map(|r| r.value);
    if let (Some(r), Some(n)) = (p50("kernel_remoted"), p50("kernel_native")) {
        results.push(BenchResult::value("kernel_overhead", "ns", r - n));
    }
    Ok(results)
}

/// The guest of `ava-bench scaling`: small calls (a device query) for
/// `seconds`, timed one by one; prints how many and their p50 and p99.
pub fn scaling_guest_role(seconds: f64) -> anyhow::Result<()> {
    let remote = Cl::load(&sibling("libava_opencl.so")?)?;
    let s = setup(&remote)?;
    let mut h = histogram();
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut calls = 0u64;
    while Instant::now() < end {
        let t = Instant::now();
        query(&remote, &s)?;
        h.record(t.elapsed().as_nanos() as u64)?;
        calls += 1;
    }
    println!(
        "calls {calls} p50_ns {} p99_ns {}",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99)
    );
    Ok(())
}

/// A guest that blocks on one long kernel (`iters` iterations of
/// arithmetic per work item), remoted or (`native`) on the host's own
/// OpenCL library: prints how long it took.
pub fn blocker_role(iters: u32, native: bool) -> anyhow::Result<()> {
    let cl = if native {
        Cl::load(Path::new("libOpenCL.so.1"))?
    } else {
        Cl::load(&sibling("libava_opencl.so")?)?
    };
    let s = setup(&cl)?;
    let src = CString::new(
        "__kernel void spin(__global float* a, int n) { int i = get_global_id(0); float x = a[i]; \
         for (int j = 0; j < n; j++) x = x * 0.999999f + 0.5f; a[i] = x; }",
    )?;
    let mut err = 0;
    // SAFETY: every pointer passed points to a live local of the right
    // type; the queue, device and buffer come from `setup`.
    unsafe {
        let mut ctx: Id = std::ptr::null_mut();
        check(
            "clGetCommandQueueInfo",
            cl!(cl, clGetCommandQueueInfo)(
                s.queue,
                0x1090, // CL_QUEUE_CONTEXT
                size_of::<Id>(),
                (&mut ctx as *mut Id).cast(),
                std::ptr::null_mut(),
            ),
        )?;
        let mut p = src.as_ptr();
        let program =
            cl!(cl, clCreateProgramWithSource)(ctx, 1, &mut p, std::ptr::null(), &mut err);
        check("clCreateProgramWithSource", err)?;
        check(
            "clBuildProgram",
            cl!(cl, clBuildProgram)(
                program,
                1,
                &s.device,
                std::ptr::null(),
                None,
                std::ptr::null_mut(),
            ),
        )?;
        let name = CString::new("spin")?;
        let kernel = cl!(cl, clCreateKernel)(program, name.as_ptr(), &mut err);
        check("clCreateKernel", err)?;
        check(
            "clSetKernelArg",
            cl!(cl, clSetKernelArg)(kernel, 0, size_of::<Id>(), (&s.buffer as *const Id).cast()),
        )?;
        check(
            "clSetKernelArg",
            cl!(cl, clSetKernelArg)(kernel, 1, 4, (&iters as *const u32).cast()),
        )?;
        let global = 64usize;
        let t = Instant::now();
        check(
            "clEnqueueNDRangeKernel",
            cl!(cl, clEnqueueNDRangeKernel)(
                s.queue,
                kernel,
                1,
                std::ptr::null(),
                &global,
                std::ptr::null(),
                0,
                std::ptr::null(),
                std::ptr::null_mut(),
            ),
        )?;
        check("clFinish", cl!(cl, clFinish)(s.queue))?;
        println!("kernel_ms {:.0}", t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(())
}

/// An idle guest of `ava-bench idle`: a context and a queue, then for
/// `seconds`, once a second, one small call (a device query) after a
/// second of idleness, timed. Prints the calls' latencies (ns) and its own
/// CPU time.
pub fn idle_guest_role(seconds: f64) -> anyhow::Result<()> {
    let remote = Cl::load(&sibling("libava_opencl.so")?)?;
    let s = setup(&remote)?;
    let cpu0 = own_cpu();
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut lat = Vec::new();
    while Instant::now() + Duration::from_secs(1) < end {
        std::thread::sleep(Duration::from_secs(1));
        let t = Instant::now();
        query(&remote, &s)?;
        lat.push(t.elapsed().as_nanos() as u64);
    }
    let cpu = own_cpu() - cpu0;
    let list: Vec<String> = lat.iter().map(ToString::to_string).collect();
    println!("cpu_s {cpu:.4} latencies_ns {}", list.join(","));
    Ok(())
}

/// CPU time (user + system) this process used so far, in seconds.
fn own_cpu() -> f64 {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF);
    u.map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 * 1e-6;
        t(u.user_time()) + t(u.system_time())
    })
}
