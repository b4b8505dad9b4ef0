//! The scheduler with real guests on PoCL, one region per VM, each VM its
//! own executor: fair shares of device time (equal and weighted), a launch
//! rate limit, strict priority, memory quotas on every allocation path,
//! cleanup after `kill -9`, a live reload, and metrics that `promtool`
//! accepts. Figures come from the worker's metrics endpoint, measured over
//! a window in which every guest is running.
//!
//! The tests share the machine's cores, so they run one at a time.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ava_worker::metrics::{by_vm, fetch};

/// One test at a time: they measure shares of the same cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Kernel iterations: about 3.5 ms per kernel natively on this machine's
/// CPU device.
const ITERS: &str = "100000";

/// A worker serving VMs `vm0`… from a configuration file, with metrics.
struct Fleet {
    child: Child,
    config: PathBuf,
    log: PathBuf,
    regions: Vec<PathBuf>,
    addr: String,
    guests: Vec<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Fleet {
    /// `vms[i]` holds the extra TOML keys of VM `vm{i}`. The regions have
    /// no buffer heap: buffers live in the device's memory.
    fn start(tag: &str, vms: &[&str]) -> Fleet {
        Self::start_with_heap(tag, vms, 0)
    }

    /// As [`Fleet::start`], with a buffer heap of `heap` bytes per region
    /// (where buffers and shared virtual memory may live).
    fn start_with_heap(tag: &str, vms: &[&str], heap: u64) -> Fleet {
        let pid = std::process::id();
        let regions: Vec<PathBuf> = (0..vms.len())
            .map(|i| PathBuf::from(format!("/dev/shm/ava-test-sched-{tag}-{pid}-{i}")))
            .collect();
        let config = std::env::temp_dir().join(format!("ava-sched-{tag}-{pid}.toml"));
        std::fs::write(&config, Self::toml(&regions, vms)).expect("write the configuration");
        let log = std::env::temp_dir().join(format!("ava-sched-{tag}-{pid}.log"));
        let addr = format!("127.0.0.1:{}", free_port());
        for r in &regions {
            let _ = std::fs::remove_file(r);
        }
        let child = Command::new(common::worker_bin())
            .arg("--config")
            .arg(&config)
            .args([
                "--metrics",
                &addr,
                "--arena-size",
                "1048576",
                "--heap-size",
                &heap.to_string(),
            ])
            .args(["--stale-after", "1"])
            .env("AVA_LOG", "info")
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start ava-worker");
        let fleet = Fleet {
            child,
            config,
            log,
            regions,
            addr,
            guests: Vec::new(),
        };
        let start = Instant::now();
        while !fleet
            .regions
            .iter()
            .all(|r| transport::Region::open(r).is_ok_and(|r| r.worker_heartbeat() > 0))
            || fetch(&fleet.addr).is_err()
        {
            assert!(start.elapsed() < Duration::from_secs(60), "{}", fleet.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        fleet
    }

    fn toml(regions: &[PathBuf], vms: &[&str]) -> String {
        regions
            .iter()
            .zip(vms)
            .enumerate()
            .map(|(i, (r, extra))| {
                format!(
                    "[[vm]]\nname = \"vm{i}\"\nregion = \"{}\"\n{extra}\n",
                    r.display()
                )
            })
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A guest program of VM `vm`.
    fn guest(&self, vm: usize, program: &std::path::Path) -> Command {
        let mut c = Command::new(program);
        c.env("AVA_REGION", &self.regions[vm])
            .env("LD_PRELOAD", common::guestlib())
            .env("OCL_ICD_VENDORS", common::no_vendors_dir());
        c
    }

    /// Starts a guest that keeps running (killed when the fleet stops).
    fn spawn(&mut self, vm: usize, program: &std::path::Path, args: &[&str]) {
        let child = self
            .guest(vm, program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a guest");
        self.guests.push(child);
    }

    fn metric(&self, name: &str) -> HashMap<String, f64> {
        by_vm(&fetch(&self.addr).expect("metrics"), name)
            .into_iter()
            .collect()
    }

    /// Waits until every VM of `vms` has completed kernels.
    fn wait_running(&self, vms: &[usize]) {
        let start = Instant::now();
        loop {
            let k = self.metric("ava_vm_kernels_total");
            if vms
                .iter()
                .all(|v| k.get(&format!("vm{v}")).is_some_and(|&n| n > 0.0))
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "guests did not start: {k:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The increase of `name` per VM over `window`.
    fn delta(&self, name: &str, window: Duration) -> HashMap<String, f64> {
        let a = self.metric(name);
        std::thread::sleep(window);
        let b = self.metric(name);
        b.into_iter()
            .map(|(k, v)| {
                let d = v - a.get(&k).copied().unwrap_or(0.0);
                (k, d)
            })
            .collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for g in &mut self.guests {
            let _ = g.kill();
            let _ = g.wait();
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        for r in &self.regions {
            let _ = std::fs::remove_file(r);
        }
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.log);
    }
}

fn jain(x: &[f64]) -> f64 {
    let s: f64 = x.iter().sum();
    let q: f64 = x.iter().map(|v| v * v).sum();
    s * s / (x.len() as f64 * q)
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn equal_weights_give_equal_device_time() {
    let _serial = lock();
    let spin = common::build_sample("spin");
    let mut f = Fleet::start("fair", &[""; 8]);
    for vm in 0..8 {
        f.spawn(vm, &spin, &["60", ITERS, "saturate"]);
    }
    f.wait_running(&(0..8).collect::<Vec<_>>());
    let d = f.delta("ava_vm_device_seconds_total", Duration::from_secs(6));
    let shares: Vec<f64> = (0..8).map(|v| d[&format!("vm{v}")]).collect();
    let j = jain(&shares);
    println!("device seconds per VM over 6 s: {shares:.3?}; Jain's index {j:.4}");
    assert!(shares.iter().all(|&s| s > 0.0), "{shares:?}");
    assert!(
        j >= 0.95,
        "Jain's index {j} < 0.95: {shares:?}\n{}",
        f.log()
    );
}

#[test]
fn weights_1_2_4_give_device_time_in_proportion() {
    let _serial = lock();
    let spin = common::build_sample("spin");
    let mut f = Fleet::start("weights", &["weight = 1", "weight = 2", "weight = 4"]);
    for vm in 0..3 {
        f.spawn(vm, &spin, &["60", ITERS, "saturate"]);
    }
    f.wait_running(&[0, 1, 2]);
    let d = f.delta("ava_vm_device_seconds_total", Duration::from_secs(6));
    let t: Vec<f64> = (0..3).map(|v| d[&format!("vm{v}")]).collect();
    let total: f64 = t.iter().sum();
    let shares: Vec<f64> = t.iter().map(|x| x / total).collect();
    println!("device-time shares with weights 1:2:4: {shares:.3?} (expected 0.143, 0.286, 0.571)");
    for (s, w) in shares.iter().zip([1.0, 2.0, 4.0]) {
        let expected = w / 7.0;
        assert!(
            (s / expected - 1.0).abs() <= 0.10,
            "share {s:.3} for weight {w} (expected {expected:.3} ± 10%): {shares:?}\n{}",
            f.log()
        );
    }
}

#[test]
fn a_launch_rate_limit_holds() {
    let _serial = lock();
    let spin = common::build_sample("spin");
    let mut f = Fleet::start("rate", &["max_launches_per_s = 40", ""]);
    for vm in 0..2 {
        f.spawn(vm, &spin, &["60", "2000", "saturate"]);
    }
    f.wait_running(&[0, 1]);
    let window = Duration::from_secs(5);
    let d = f.delta("ava_vm_kernels_total", window);
    let rate = d["vm0"] / window.as_secs_f64();
    let other = d["vm1"] / window.as_secs_f64();
    println!("launches/s: limited VM {rate:.1} (limit 40), unlimited VM {other:.1}");
    assert!(
        (rate / 40.0 - 1.0).abs() <= 0.05,
        "limited VM ran {rate:.1} launches/s, not 40 ± 5%\n{}",
        f.log()
    );
    assert!(
        other > 2.0 * rate,
        "the unlimited VM is held back too: {other:.1}/s"
    );
    let held = f.metric("ava_vm_throttled_seconds_total");
    assert!(held["vm0"] > 1.0 && held["vm1"] < held["vm0"], "{held:?}");
}

/// The median launch-and-wait (µs) of a `spin latency` run of VM `vm`.
fn latency(f: &Fleet, vm: usize, spin: &std::path::Path, seconds: &str) -> f64 {
    let out = common::run_capture(
        {
            let mut c = f.guest(vm, spin);
            c.args([seconds, ITERS, "latency"]);
            c
        },
        Duration::from_secs(120),
    );
    let text = common::text(&out.stdout);
    assert!(out.status.success(), "{text}{}", common::text(&out.stderr));
    text.lines()
        .find_map(|l| l.strip_prefix("median_us "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no median in {text}"))
}

#[test]
fn a_high_priority_vm_keeps_its_latency_under_load() {
    let _serial = lock();
    let spin = common::build_sample("spin");
    let mut vms = vec!["priority = \"high\""];
    vms.extend(["priority = \"low\""; 7]);
    let mut f = Fleet::start("priority", &vms);
    let alone = latency(&f, 0, &spin, "3");
    for vm in 1..8 {
        f.spawn(vm, &spin, &["60", ITERS, "saturate"]);
    }
    f.wait_running(&(1..8).collect::<Vec<_>>());
    let loaded = latency(&f, 0, &spin, "3");
    println!(
        "high-priority kernel latency: alone {alone:.0} µs, with 7 low-priority VMs saturating {loaded:.0} µs ({:.2}x)",
        loaded / alone
    );
    assert!(
        loaded <= 1.5 * alone,
        "latency {loaded:.0} µs under load vs {alone:.0} µs alone\n{}",
        f.log()
    );
}

#[test]
fn memory_quotas_hold_on_every_allocation_path() {
    let _serial = lock();
    let quota = common::build_sample("quota");
    // A heap, for shared virtual memory (and buffers that fit).
    let f = Fleet::start_with_heap("quota", &["memory_quota = \"1MiB\"", ""], 4 << 20);
    let run = |vm: usize, path: &str| {
        let mut c = f.guest(vm, &quota);
        c.arg(path);
        let out = common::run_capture(c, Duration::from_secs(60));
        let text = common::text(&out.stdout);
        assert!(out.status.success(), "{path}: {text}");
        let get = |k: &str| -> i64 {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{path}: no {k} in {text}"))
        };
        (get("created "), get("first_error "), get("retry "))
    };
    const ALLOCATION_FAILURE: i64 = -4;
    for path in ["buffer", "buffer_properties", "image", "image2d"] {
        // Four 256 KiB objects fit in 1 MiB; the fifth is refused as a full
        // device refuses it; one freed makes room again.
        assert_eq!(
            run(0, path),
            (4, ALLOCATION_FAILURE, 0),
            "{path}\n{}",
            f.log()
        );
        // The VM without a quota is not limited.
        assert_eq!(run(1, path), (8, 0, 0), "{path}");
    }
    // Shared virtual memory in the heap counts as buffers do; clSVMAlloc
    // reports the refusal by NULL (printed as -5).
    assert_eq!(run(0, "svm"), (4, -5, 0), "svm\n{}", f.log());
    assert_eq!(run(1, "svm"), (8, 0, 0), "svm");
    // Sub-buffers take no memory of their own (their parent is charged).
    assert_eq!(run(0, "sub_buffer"), (8, 0, 0));
    // Pipes: this device has none; the answer is the driver's, as natively.
    let native = Command::new(&quota)
        .arg("pipe")
        .output()
        .expect("run natively");
    let n = common::text(&native.stdout);
    let remote = run(0, "pipe");
    assert!(
        n.contains(&format!("first_error {}", remote.1)),
        "native {n} remoted {remote:?}"
    );
    let m = f.metric("ava_vm_memory_bytes");
    assert_eq!(
        m["vm0"], 0.0,
        "memory credited back after the guests freed it"
    );
    let refused = f.metric("ava_vm_memory_refusals_total");
    assert!(
        refused["vm0"] >= 4.0 && refused["vm1"] == 0.0,
        "{refused:?}"
    );
}

#[test]
fn kill_9_frees_everything_the_guest_held() {
    let _serial = lock();
    let spin = common::build_sample("spin");
    let quota = common::build_sample("quota");
    let mut f = Fleet::start("kill", &["memory_quota = \"64MiB\"", ""]);
    // A guest that holds memory and is killed in the middle of its calls
    // (it launches and waits without pause).
    let mut victim = f
        .guest(0, &spin)
        .args(["60", "2000", "saturate"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start the victim");
    f.spawn(1, &spin, &["60", ITERS, "saturate"]);
    f.wait_running(&[0, 1]);
    let held = f.metric("ava_vm_memory_bytes")["vm0"];
    assert!(held > 0.0, "the victim holds memory: {held}");
    let _ = victim.kill();
    let _ = victim.wait();
    let start = Instant::now();
    loop {
        let m = f.metric("ava_vm_memory_bytes")["vm0"];
        let ch = f.metric("ava_vm_channels")["vm0"];
        if m == 0.0 && ch == 0.0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "after kill -9: memory {m}, channels {ch}\n{}",
            f.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The other VM kept working, and the killed VM's quota is whole again.
    let k1 = f.delta("ava_vm_kernels_total", Duration::from_secs(1))["vm1"];
    assert!(k1 > 0.0, "the other VM stopped");
    let mut c = f.guest(0, &quota);
    c.arg("buffer");
    let out = common::run_capture(c, Duration::from_secs(60));
    assert!(
        common::text(&out.stdout).contains("created 8"),
        "{}",
        common::text(&out.stdout)
    );
}

#[test]
fn a_reload_changes_weights_live_and_a_broken_file_changes_nothing() {
    let _serial = lock();
    let spin = common::build_sample("spin");
    let mut f = Fleet::start("reload", &["weight = 1", "weight = 1"]);
    for vm in 0..2 {
        f.spawn(vm, &spin, &["60", ITERS, "saturate"]);
    }
    f.wait_running(&[0, 1]);
    let before = f.delta("ava_vm_device_seconds_total", Duration::from_secs(3));
    let share0 = before["vm0"] / (before["vm0"] + before["vm1"]);
    // vm0's weight becomes 4: the file changes on disk.
    let text = std::fs::read_to_string(&f.config).unwrap();
    let changed = text.replacen("weight = 1", "weight = 4", 1);
    std::fs::write(&f.config, &changed).unwrap();
    let t = Instant::now();
    while f.metric("ava_vm_weight")["vm0"] != 4.0 {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "the new weight is not in force after 1 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("new weight in force after {:?}", t.elapsed());
    let after = f.delta("ava_vm_device_seconds_total", Duration::from_secs(3));
    let share0_after = after["vm0"] / (after["vm0"] + after["vm1"]);
    println!("vm0's device-time share: {share0:.3} at weight 1:1, {share0_after:.3} at 4:1");
    assert!(
        share0_after > 0.7,
        "share {share0_after:.3} at weights 4:1\n{}",
        f.log()
    );
    // A broken file: refused with its position; the weights stay.
    std::fs::write(
        &f.config,
        changed.replacen("weight = 4", "weight = \"heavy\"", 1),
    )
    .unwrap();
    let t = Instant::now();
    let log = loop {
        let log = f.log();
        if log.contains("configuration not reloaded") {
            break log;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let line = log
        .lines()
        .find(|l| l.contains("configuration not reloaded"))
        .unwrap();
    assert!(line.contains(&format!("{}:", f.config.display())), "{line}");
    assert_eq!(f.metric("ava_vm_weight")["vm0"], 4.0);
    // The guests were never dropped.
    for g in &mut f.guests {
        assert!(
            matches!(g.try_wait(), Ok(None)),
            "a guest ended during the reloads"
        );
    }
    assert!(!f.log().contains("executor died"));
}

#[test]
fn the_metrics_pass_promtool_and_groups_share_one_executor() {
    let _serial = lock();
    let vecadd = common::build_sample("vecadd");
    let f = Fleet::start(
        "promtool",
        &[
            "isolation_group = \"team\"",
            "isolation_group = \"team\"",
            "",
        ],
    );
    for vm in 0..3 {
        let out = common::run_capture(f.guest(vm, &vecadd), Duration::from_secs(60));
        assert!(out.status.success(), "{}", common::text(&out.stdout));
    }
    let text = fetch(&f.addr).unwrap();
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) is installed");
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        common::text(&out.stdout),
        common::text(&out.stderr)
    );
    // Each VM's calls are counted, by function too.
    let calls = by_vm(&text, "ava_vm_calls_total");
    assert!(calls.iter().all(|(_, n)| *n > 10.0), "{calls:?}");
    assert!(text.contains("function=\"clEnqueueNDRangeKernel\""));
    // vm0 and vm1 share one executor; vm2 has its own.
    let pids: HashMap<String, f64> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("ava_group_executor_pid{group=\"")?;
            let (g, v) = rest.split_once("\"} ")?;
            Some((g.to_string(), v.parse().ok()?))
        })
        .collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(
        pids["team"] > 0.0 && pids["vm2"] > 0.0 && pids["team"] != pids["vm2"],
        "{pids:?}"
    );
    assert!(
        text.contains("ava_vm_kernels_total{vm=\"vm0\",group=\"team\"}")
            && text.contains("ava_vm_kernels_total{vm=\"vm1\",group=\"team\"}")
    );
}

#[test]
fn a_device_share_cap_and_a_byte_rate_hold() {
    let _serial = lock();
    let spin = common::build_sample("spin");
    let vecadd = common::build_sample("vecadd");
    let mut f = Fleet::start(
        "caps",
        &["max_device_share = 0.25", "max_bytes_per_s = \"8MiB\""],
    );
    f.spawn(0, &spin, &["60", ITERS, "saturate"]);
    f.wait_running(&[0]);
    let window = Duration::from_secs(4);
    let used = f.delta("ava_vm_device_seconds_total", window)["vm0"] / window.as_secs_f64();
    println!("device share used under a cap of 0.25: {used:.3}");
    assert!(
        (0.15..=0.275).contains(&used),
        "device share {used:.3} under a cap of 0.25\n{}",
        f.log()
    );
    // vecadd moves 12 MiB (two 4 MiB writes... in and a 4 MiB read out):
    // at 8 MiB/s that takes at least about 1.5 s, less the 50 ms burst.
    let t = Instant::now();
    let out = common::run_capture(f.guest(1, &vecadd), Duration::from_secs(60));
    let took = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", common::text(&out.stdout));
    let to = by_vm(&fetch(&f.addr).unwrap(), "ava_vm_bytes_total");
    let moved: f64 = to.iter().filter(|(v, _)| v == "vm1").map(|(_, b)| b).sum();
    let least = moved / (8.0 * 1024.0 * 1024.0) - 0.1;
    println!("vecadd moved {moved} bytes in {took:.2} s at 8 MiB/s (at least {least:.2} s)");
    assert!(moved >= 12.0 * 1024.0 * 1024.0, "{moved}");
    assert!(took >= least, "{took:.2} s for {moved} bytes at 8 MiB/s");
}

#[test]
fn vms_added_and_removed_live_and_the_stats_table() {
    let _serial = lock();
    let mut f = Fleet::start("addremove", &[""]);
    let stats = Command::new(common::worker_bin())
        .args(["stats", "--metrics", &f.addr])
        .output()
        .expect("ava-worker stats");
    let table = common::text(&stats.stdout);
    assert!(stats.status.success(), "{}", common::text(&stats.stderr));
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|h| h.contains("calls") && h.contains("memory MiB")),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("vm0 ")), "{table}");
    // vm1 is added: it is served, with its own executor.
    let new_region = PathBuf::from(format!(
        "/dev/shm/ava-test-sched-addremove-{}-1",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&new_region);
    f.regions.push(new_region.clone());
    let two = Fleet::toml(&f.regions, &["", "weight = 3"]);
    std::fs::write(&f.config, &two).unwrap();
    let t = Instant::now();
    while !(transport::Region::open(&new_region).is_ok_and(|r| r.worker_heartbeat() > 0)
        && f.metric("ava_vm_weight").get("vm1") == Some(&3.0))
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "vm1 not served\n{}",
            f.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = common::run_capture(f.guest(1, Path::new("clinfo")), Duration::from_secs(60));
    assert!(
        common::text(&out.stdout).contains("Number of platforms"),
        "{}",
        f.log()
    );
    // vm0 is removed: drained, released, gone from the metrics; vm1 stays.
    let only = Fleet::toml(&f.regions[1..], &["weight = 3"]).replace("vm0", "vm1");
    std::fs::write(&f.config, only).unwrap();
    let t = Instant::now();
    while f.metric("ava_vm_weight").contains_key("vm0") {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "vm0 not removed\n{}",
            f.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let region0 = transport::Region::open(&f.regions[0]).unwrap();
    let t = Instant::now();
    while region0.worker_pid() != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "vm0's region still held\n{}",
            f.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        f.log().contains("configuration: VM removed vm=vm0"),
        "{}",
        f.log()
    );
    let out = common::run_capture(f.guest(1, Path::new("clinfo")), Duration::from_secs(60));
    assert!(common::text(&out.stdout).contains("Number of platforms"));
}
