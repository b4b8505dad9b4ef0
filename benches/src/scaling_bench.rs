//! `ava-bench scaling`: aggregate small-call throughput and per-call
//! latency with 1, 2, 4, 8 and 16 guests at once, each a VM of its own
//! (one region, one executor each) served by one worker, beside one guest's
//! figures from the same run; and a guest's small-call p99 while another
//! VM's guest is blocked on a 2-second kernel, beside its p99 when that VM
//! is idle.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::report::{BenchResult, compare};

/// Guest counts measured.
pub const GUESTS: [usize; 5] = [1, 2, 4, 8, 16];
/// Kernel iterations of the blocker: about 2 s on PoCL on this machine
/// kind (the figure printed is measured).
const BLOCKER_ITERS: &str = "57000000";

/// What one guest printed.
#[derive(Debug, Clone, Copy)]
struct Guest {
    calls: f64,
    p50: f64,
    p99: f64,
}

fn field(text: &str, name: &str) -> anyhow::Result<f64> {
    let mut w = text.split_whitespace();
    while let Some(x) = w.next() {
        if x == name {
            return Ok(w.next().context("value")?.parse()?);
        }
    }
    anyhow::bail!("no {name} in {text}")
}

fn spawn_guest(role: &str, region: &PathBuf, core: usize, arg: &str) -> anyhow::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(["peer", role, &core.to_string(), arg])
        .env("AVA_REGION", region)
        .env_remove("LD_PRELOAD")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting a guest")
}

fn finish(child: Child) -> anyhow::Result<String> {
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(out.status.success(), "a guest failed: {text}");
    Ok(text)
}

fn guests(regions: &[PathBuf], n: usize, seconds: f64) -> anyhow::Result<Vec<Guest>> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let children: Vec<Child> = (0..n)
        .map(|i| {
            spawn_guest(
                "scaling-guest",
                &regions[i],
                i % cores,
                &seconds.to_string(),
            )
        })
        .collect::<anyhow::Result<_>>()?;
    children
        .into_iter()
        .map(|c| {
            let t = finish(c)?;
            Ok(Guest {
                calls: field(&t, "calls")?,
                p50: field(&t, "p50_ns")?,
                p99: field(&t, "p99_ns")?,
            })
        })
        .collect()
}

/// Runs the benchmark; the per-count series also go to `svg` as a plot.
pub fn run(quick: bool, svg: Option<&std::path::Path>) -> anyhow::Result<Vec<BenchResult>> {
    let most = *GUESTS.last().expect("counts");
    let args = [
        "--channels",
        "2",
        "--arena-size",
        "1048576",
        "--heap-size",
        "0",
    ]
    .map(String::from);
    let fleet = crate::fleet::start("scaling", most, &args)?;
    let regions = &fleet.regions;
    let seconds = if quick { 1.0 } else { 3.0 };
    let mut out = Vec::new();
    let mut series: [Vec<(f64, f64)>; 3] = Default::default();
    for n in GUESTS {
        eprintln!("[scaling] {n} guest(s) for {seconds} s");
        let g = guests(regions, n, seconds)?;
        let rate = g.iter().map(|x| x.calls).sum::<f64>() / seconds;
        let mut p50s: Vec<f64> = g.iter().map(|x| x.p50).collect();
        p50s.sort_by(f64::total_cmp);
        let p50 = p50s[p50s.len() / 2];
        let p99 = g.iter().map(|x| x.p99).fold(0.0, f64::max);
        out.push(BenchResult::value(
            &format!("guests_{n}_calls_per_s"),
            "calls/s",
            rate,
        ));
        out.push(BenchResult::value(
            &format!("guests_{n}_p50_median"),
            "ns",
            p50,
        ));
        out.push(BenchResult::value(
            &format!("guests_{n}_p99_worst"),
            "ns",
            p99,
        ));
        series[0].push((n as f64, rate));
        series[1].push((n as f64, p50));
        series[2].push((n as f64, p99));
    }
    for n in &GUESTS[1..] {
        for what in ["calls_per_s", "p50_median", "p99_worst"] {
            compare(
                &mut out,
                &format!("guests_{n}_{what}"),
                &format!("guests_1_{what}"),
            );
        }
    }
    // A guest's small calls while another VM's guest waits on a long
    // kernel; and, as the machine's own limit, while a process that is not
    // remoted runs the same kernel on the host's OpenCL (a CPU device
    // takes the cores the pollers need).
    eprintln!("[scaling] small calls beside a VM blocked on a 2-second kernel");
    let idle = guests(&regions[1..], 1, 1.0)?[0];
    let beside = |role: &str| -> anyhow::Result<(Guest, f64)> {
        let blocker = spawn_guest(role, &regions[0], 0, BLOCKER_ITERS)?;
        std::thread::sleep(Duration::from_millis(400));
        let busy = guests(&regions[1..], 1, 1.0)?[0];
        Ok((busy, field(&finish(blocker)?, "kernel_ms")?))
    };
    let (busy, kernel_ms) = beside("blocker")?;
    let (native_busy, _) = beside("native-blocker")?;
    out.push(BenchResult::value("blocking_kernel", "ms", kernel_ms));
    out.push(BenchResult::value(
        "small_call_p99_idle_neighbour",
        "ns",
        idle.p99,
    ));
    out.push(BenchResult::value(
        "small_call_p99_blocked_neighbour",
        "ns",
        busy.p99,
    ));
    out.push(BenchResult::value(
        "small_call_p99_beside_native_kernel",
        "ns",
        native_busy.p99,
    ));
    compare(
        &mut out,
        "small_call_p99_blocked_neighbour",
        "small_call_p99_idle_neighbour",
    );
    compare(
        &mut out,
        "small_call_p99_beside_native_kernel",
        "small_call_p99_idle_neighbour",
    );
    compare(
        &mut out,
        "small_call_p99_blocked_neighbour",
        "small_call_p99_beside_native_kernel",
    );
    if let Some(path) = svg {
        let svg = crate::report::svg_plot(
            "Small calls (clGetDeviceInfo) with N guests, one VM each",
            "guests",
            &[
                ("aggregate calls/s", &series[0], false),
                ("median p50 (ns)", &series[1], true),
                ("worst p99 (ns)", &series[2], true),
            ],
        );
        std::fs::write(path, svg).with_context(|| path.display().to_string())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(out)
}
