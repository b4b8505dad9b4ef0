//! `ava-bench idle`: what idle guests cost the worker, and how fast the
//! first call after a second of idleness is, with the worker's channels
//! sleeping on doorbells (`--wait adaptive`) beside polling with back-off
//! (`--wait poll`), in the same run. Sixteen guest processes (four VMs of
//! four), each holding a context and a queue and making one small call a
//! second.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::report::{BenchResult, compare};

/// VMs (regions) and guests per VM.
const VMS: usize = 4;
const PER_VM: usize = 4;

/// CPU ticks (user + system) of process `pid` and of its children.
fn tree_ticks(pid: u32) -> u64 {
    let mut total = 0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for e in dir.flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the command (which may hold spaces), from field 3.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ppid: u32 = f.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        if p == pid || ppid == pid {
            let ut: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
            let st: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
            total += ut + st;
        }
    }
    total
}

/// One configuration's figures: worker CPU (share of a core), guests' CPU
/// (share of a core, all together), first-call latencies (ns).
fn one(mode: &str, seconds: f64) -> anyhow::Result<(f64, f64, Vec<u64>)> {
    let args: Vec<String> = [
        "--channels",
        &PER_VM.to_string(),
        "--arena-size",
        "1048576",
        "--heap-size",
        "0",
        "--wait",
        mode,
    ]
    .map(String::from)
    .into();
    let fleet = crate::fleet::start(&format!("idle-{mode}"), VMS, &args)?;
    let (regions, pid) = (&fleet.regions, fleet.worker.0.id());
    let guests: Vec<Child> = (0..VMS * PER_VM)
        .map(|i| {
            Command::new(std::env::current_exe()?)
                .args([
                    "peer",
                    "idle-guest",
                    &(i % 2).to_string(),
                    &seconds.to_string(),
                ])
                .env("AVA_REGION", &regions[i / PER_VM])
                .env_remove("LD_PRELOAD")
                .stdout(Stdio::piped())
                .spawn()
                .context("starting a guest")
        })
        .collect::<anyhow::Result<_>>()?;
    // Measured once every guest is set up, for most of their run.
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: sysconf reads a constant of the system.
    let hz = match unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    };
    let (t0, c0) = (Instant::now(), tree_ticks(pid));
    std::thread::sleep(Duration::from_secs_f64(seconds - 4.0));
    let worker_cpu = (tree_ticks(pid) - c0) as f64 / hz / t0.elapsed().as_secs_f64();
    let mut guest_cpu = 0.0;
    let mut lat = Vec::new();
    for g in guests {
        let out = g.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(out.status.success(), "a guest failed: {text}");
        let mut w = text.split_whitespace();
        while let Some(k) = w.next() {
            match k {
                "cpu_s" => guest_cpu += w.next().context("cpu")?.parse::<f64>()?,
                "latencies_ns" => lat.extend(
                    w.next()
                        .context("latencies")?
                        .split(',')
                        .filter_map(|v| v.parse::<u64>().ok()),
                ),
                _ => {}
            }
        }
    }
    drop(fleet);
    Ok((worker_cpu, guest_cpu / seconds, lat))
}

/// The machine's own limit for a first call: how long a thread that slept
/// on a futex for `gap` on one core takes to run again once woken from
/// another core (ns), `rounds` times — as a worker's channel thread is
/// woken by a guest on another core.
fn futex_wake_latency(rounds: usize, gap: Duration) -> anyhow::Result<Vec<u64>> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    std::thread::scope(|s| {
        s.spawn(|| {
            let _ = crate::peer::pin(1 % cores);
            wake_rounds(rounds, gap)
        })
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the waker panicked")))
    })
}

fn wake_rounds(rounds: usize, gap: Duration) -> anyhow::Result<Vec<u64>> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let file = std::env::temp_dir().join(format!("ava-bench-futex-{}", std::process::id()));
    let shm = transport::Shm::map(&file, Some(4096))?;
    let bell = transport::bell::Bell::new(&shm, 0);
    let posted = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let sleeper = {
        let (bell, posted) = (bell.clone(), posted.clone());
        std::thread::spawn(move || {
            let _ = crate::peer::pin(0);
            let mut seen = 0;
            while seen < rounds as u64 {
                bell.announce();
                if posted.load(Ordering::SeqCst) == seen {
                    bell.sleep(Duration::from_secs(10));
                } else {
                    bell.awake();
                }
                if posted.load(Ordering::SeqCst) > seen {
                    seen += 1;
                    let _ = tx.send(epoch.elapsed().as_nanos() as u64);
                }
            }
        })
    };
    let mut out = Vec::new();
    for i in 0..rounds {
        std::thread::sleep(gap);
        let t = epoch.elapsed().as_nanos() as u64;
        posted.store(i as u64 + 1, Ordering::SeqCst);
        bell.ring();
        out.push(rx.recv()?.saturating_sub(t));
    }
    let _ = sleeper.join();
    let _ = std::fs::remove_file(&file);
    Ok(out)
}

fn quantile(v: &mut [u64], q: f64) -> f64 {
    v.sort_unstable();
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(0) as f64
}

/// Runs the benchmark: polling, then doorbells.
pub fn run(quick: bool) -> anyhow::Result<Vec<BenchResult>> {
    let seconds = if quick { 10.0 } else { 20.0 };
    let mut out = Vec::new();
    for mode in ["poll", "adaptive"] {
        eprintln!(
            "[idle] {} idle guests, --wait {mode}, {seconds} s",
            VMS * PER_VM
        );
        let (w, g, mut lat) = one(mode, seconds)?;
        out.push(BenchResult::value(
            &format!("worker_cpu_{mode}"),
            "% core",
            w * 100.0,
        ));
        out.push(BenchResult::value(
            &format!("guests_cpu_{mode}"),
            "% core",
            g * 100.0,
        ));
        out.push(BenchResult::value(
            &format!("first_call_p50_{mode}"),
            "ns",
            quantile(&mut lat, 0.5),
        ));
        out.push(BenchResult::value(
            &format!("first_call_p99_{mode}"),
            "ns",
            quantile(&mut lat, 0.99),
        ));
    }
    for what in [
        "worker_cpu",
        "guests_cpu",
        "first_call_p50",
        "first_call_p99",
    ] {
        compare(
            &mut out,
            &format!("{what}_adaptive"),
            &format!("{what}_poll"),
        );
    }
    eprintln!("[idle] the machine's futex wake-up after 1 s of sleep");
    let mut wake = futex_wake_latency(if quick { 5 } else { 10 }, Duration::from_secs(1))?;
    out.push(BenchResult::value(
        "futex_wake_p50",
        "ns",
        quantile(&mut wake, 0.5),
    ));
    out.push(BenchResult::value(
        "futex_wake_max",
        "ns",
        quantile(&mut wake, 1.0),
    ));
    compare(&mut out, "first_call_p50_adaptive", "futex_wake_p50");
    Ok(out)
}
