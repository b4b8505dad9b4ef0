//! Test support: the test library built beside the tests, and a
//! `testapi-worker` process on a fresh region, stopped and removed on drop.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a worker may take to start serving: generous, since the
/// machine may be busy building or testing something else.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// `libava_testapi.so`. Integration tests run from target/<profile>/deps,
/// where cargo also leaves the cdylib it built for them; a plain build puts
/// it one up.
pub fn library_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap()]
        .iter()
        .map(|d| d.join("libava_testapi.so"))
        .find(|p| p.exists())
        .expect("libava_testapi.so is built beside the tests")
}

/// A running `testapi-worker` serving `region`.
pub struct Worker {
    child: Child,
    /// The region it serves (the first, when it serves several).
    pub region: PathBuf,
    /// Every region it serves.
    pub regions: Vec<PathBuf>,
    /// Its stderr: the serving loop's log.
    pub log_path: PathBuf,
}

impl Worker {
    /// Starts a worker on a new region named after `tag`, with extra
    /// environment, and waits until it beats. Panics, with the worker's
    /// log, if it exits or does not beat within a generous deadline.
    pub fn start(tag: &str, env: &[(&str, &str)]) -> Worker {
        Worker::start_with(tag, env, &[])
    }

    /// [`Worker::start`] with extra arguments.
    pub fn start_with(tag: &str, env: &[(&str, &str)], args: &[&str]) -> Worker {
        let region = Worker::fresh_region(tag);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_testapi-worker"));
        cmd.arg(&region)
            .arg(library_path())
            .args(args)
            .envs(env.iter().copied());
        Worker::spawn(cmd, region)
    }

    /// Starts `ava-worker` (built beside the tests by `cargo build
    /// --workspace`, as `scripts/test.sh` does) on a new region, serving the
    /// test API from the library built here and the backends `backends`
    /// names (e.g. `opencl,testapi`).
    pub fn start_ava_worker(tag: &str, backends: &str) -> Worker {
        Worker::start_ava_worker_with(tag, 1, backends, &[])
    }

    /// [`Worker::start_ava_worker`] on `regions` new regions (`TAG-0`,
    /// `TAG-1`, …), with extra arguments.
    pub fn start_ava_worker_with(
        tag: &str,
        regions: usize,
        backends: &str,
        extra: &[&str],
    ) -> Worker {
        let paths = Worker::fresh_region_paths(tag, regions);
        let exe = std::env::current_exe().unwrap();
        let bin = exe.parent().unwrap().parent().unwrap().join("ava-worker");
        assert!(
            bin.exists(),
            "{} is missing: build the workspace first (scripts/test.sh does)",
            bin.display()
        );
        let mut cmd = Command::new(bin);
        for p in &paths {
            cmd.arg("--region").arg(p);
        }
        cmd.args(["--backends", backends, "--testapi-lib"])
            .arg(library_path())
            .args(["--arena-size", "1048576", "--heap-size", "4194304"])
            .args(extra);
        Worker::spawn_on(cmd, paths)
    }

    /// The paths [`Worker::start_ava_worker_with`] gives `regions` regions
    /// of `tag` (none of them exists).
    pub fn fresh_region_paths(tag: &str, regions: usize) -> Vec<PathBuf> {
        if regions == 1 {
            vec![Worker::fresh_region(tag)]
        } else {
            (0..regions)
                .map(|i| Worker::fresh_region(&format!("{tag}-{i}")))
                .collect()
        }
    }

    fn fresh_region(tag: &str) -> PathBuf {
        let region = std::env::temp_dir().join(format!("ava-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&region);
        region
    }

    fn spawn(cmd: Command, region: PathBuf) -> Worker {
        Worker::spawn_on(cmd, vec![region])
    }

    fn spawn_on(mut cmd: Command, regions: Vec<PathBuf>) -> Worker {
        let region = regions[0].clone();
        let log_path = region.with_extension("log");
        let log = std::fs::File::create(&log_path).expect("create the worker's log");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the worker");
        let mut worker = Worker {
            child,
            region,
            regions,
            log_path,
        };
        let deadline = Instant::now() + START_DEADLINE;
        let serving = |w: &Worker| {
            w.regions
                .iter()
                .all(|r| transport::Region::open(r).is_ok_and(|r| r.worker_heartbeat() > 0))
        };
        while !serving(&worker) {
            if let Some(status) = worker.child.try_wait().expect("poll testapi-worker") {
                panic!(
                    "the worker exited ({status}) before serving {}:\n{}",
                    worker.region.display(),
                    worker.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the worker does not serve {} after {START_DEADLINE:?}:\n{}",
                worker.region.display(),
                worker.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        worker
    }

    /// What the worker has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the worker's log has a line containing `text`; returns
    /// that line. Panics, with the log, if none comes within a generous
    /// deadline.
    pub fn wait_for_line(&self, text: &str) -> String {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains(text)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the worker logged no {text:?} line in {START_DEADLINE:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Asked to stop first, so that it stops its executors and removes
        // its files; killed if it does not.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for r in &self.regions {
            let _ = std::fs::remove_file(r);
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// This test binary, started again to run only `test`, as a guest:
/// `role_var` set to `role`, and `worker`'s region in `AVA_REGION` (where
/// the generated guest code looks for it).
pub fn guest_half(test: &str, role_var: &str, role: &str, worker: &Worker) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("test binary"));
    c.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(role_var, role)
        .env("AVA_REGION", &worker.region);
    c
}

/// Panics, with its output and the worker's log, if the guest process
/// `what` failed.
pub fn check_guest(what: &str, out: &std::process::Output, worker: &Worker) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}\nworker log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        worker.log()
    );
}

/// How long a guest process of a test may run: far beyond what any takes
/// on a busy machine, so that a hang fails the test with what every process
/// was doing instead of stopping the whole suite.
pub const GUEST_DEADLINE: Duration = Duration::from_secs(180);

/// Waits for the guest process `child` and collects its output, as
/// `Child::wait_with_output` does, for at most [`GUEST_DEADLINE`]. Past it,
/// panics with the thread stacks of the guest and of the worker's
/// processes (when gdb is installed), the guest's output so far and the
/// worker's log.
pub fn output_within(what: &str, mut child: Child, worker: &Worker) -> std::process::Output {
    use std::io::Read;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + GUEST_DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for a guest") {
            break s;
        }
        if Instant::now() >= deadline {
            let mut stacks = stacks_of(child.id());
            for pid in descendants(worker.child.id()) {
                stacks.push_str(&stacks_of(pid));
            }
            let _ = child.kill();
            let _ = child.wait();
            let out = out.join().unwrap_or_default();
            let err = err.join().unwrap_or_default();
            panic!(
                "{what} did not end within {GUEST_DEADLINE:?}:\nstdout:\n{}\nstderr:\n{}\n\
                 stacks:\n{stacks}\nworker log:\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err),
                worker.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// The thread stacks of process `pid`, from gdb (empty when gdb is not
/// installed or cannot attach).
fn stacks_of(pid: u32) -> String {
    let Ok(out) = Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt",
        ])
        .stdin(Stdio::null())
        .output()
    else {
        return String::new();
    };
    format!(
        "--- process {pid}:\n{}\n",
        String::from_utf8_lossy(&out.stdout)
    )
}

/// Every process whose ancestry leads to `pid` (the worker's executors).
fn descendants(pid: u32) -> Vec<u32> {
    let parent_of = |p: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        // pid (comm) state ppid ...: comm may hold spaces, so read after ')'.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let all: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(all.iter().copied().filter(|&c| parent_of(c) == Some(p)));
        i += 1;
    }
    found
}
