//! Test support: a real `ava-worker` process on a fresh region, and
//! commands run natively or through the guest library (`LD_PRELOAD`).
//!
//! `scripts/test.sh` builds `ava-worker` and `libava_opencl.so` before the
//! tests run; they are found next to the test binary's target directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>`, found from the test binary (`target/<profile>/deps/..`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_owned()
}

/// The guest library.
pub fn guestlib() -> PathBuf {
    let p = target_dir().join("libava_opencl.so");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p ava-guestlib` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The worker binary.
pub fn worker_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ava-worker"))
}

/// A running worker on its own region; stopped and cleaned up on drop.
pub struct Stack {
    pub region: PathBuf,
    child: Child,
    pub log: PathBuf,
    /// The arguments it was started with (for [`Stack::restart`]).
    args: Vec<String>,
    /// The extra environment it was started with.
    env: Vec<(String, String)>,
}

impl Stack {
    /// Starts `ava-worker` on a new region named after `tag`.
    pub fn start(tag: &str) -> Stack {
        Self::start_with(tag, &[])
    }

    /// Starts `ava-worker` with extra arguments.
    pub fn start_with(tag: &str, args: &[&str]) -> Stack {
        let mut all = vec!["--arena-size", "8388608"];
        all.extend_from_slice(args);
        Self::launch(tag, &all, &[])
    }

    /// Starts `ava-worker` with `args` and extra environment `env` (no
    /// default arena size).
    pub fn launch(tag: &str, args: &[&str], env: &[(&str, &str)]) -> Stack {
        let region = PathBuf::from(format!("/dev/shm/ava-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&region);
        let log = std::env::temp_dir().join(format!("ava-worker-{tag}-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = Self::spawn_worker(&region, &log, &args, &env);
        let stack = Stack {
            region,
            child,
            log,
            args,
            env,
        };
        stack.wait_ready(0);
        stack
    }

    /// Starts `ava-worker` on `region`, its log appended to `log`.
    fn spawn_worker(region: &Path, log: &Path, args: &[String], env: &[(String, String)]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        Command::new(worker_bin())
            .arg("--region")
            .arg(region)
            .args(args)
            .env("AVA_LOG", "info,remoting=debug,ava_worker::guards=debug")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stderr(log)
            .spawn()
            .expect("start ava-worker")
    }

    /// Kills the worker as a crash would: its executors and then the
    /// supervisor with SIGKILL (the supervisor stopped first, so that it
    /// restarts nothing), leaving the region as they left it.
    pub fn kill_hard(&mut self) {
        use nix::sys::signal::{Signal, kill};
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        kill(pid, Signal::SIGSTOP).expect("stop the supervisor");
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            let _ = kill(nix::unistd::Pid::from_raw(c), Signal::SIGKILL);
        }
        kill(pid, Signal::SIGKILL).expect("kill the supervisor");
        let _ = self.child.wait();
    }

    /// Starts a new worker on the same region, with the arguments and
    /// environment of the first (after [`Stack::kill_hard`]); its log
    /// follows the first one's in [`Stack::log`].
    pub fn restart(&mut self) {
        let before = transport::Region::open(&self.region)
            .map(|r| r.worker_heartbeat())
            .unwrap_or(0);
        self.child = Self::spawn_worker(&self.region, &self.log, &self.args, &self.env);
        self.wait_ready(before);
    }

    /// Waits until the region's worker heartbeat has moved past `after`.
    fn wait_ready(&self, after: u64) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(r) = transport::Region::open(&self.region)
                && r.worker_heartbeat() > after
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "worker did not start; log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// A command run through the guest library against this worker. Its
    /// OpenCL ICD loader finds no platform (`OCL_ICD_VENDORS` names an empty
    /// directory), as inside a VM: a function that the guest library does
    /// not export fails instead of reaching the host's driver natively.
    pub fn remote(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("AVA_REGION", &self.region)
            .env("LD_PRELOAD", guestlib())
            .env("OCL_ICD_VENDORS", no_vendors_dir());
        c
    }

    /// `program` against this worker through the system's ICD loader
    /// (ocl-icd), with `vendors` as its vendors directory (see
    /// [`icd_vendors_dir`]): no `LD_PRELOAD`, the program links the loader
    /// as it does natively.
    pub fn remote_icd(&self, program: impl AsRef<std::ffi::OsStr>, vendors: &Path) -> Command {
        let mut c = Command::new(program);
        c.env("AVA_REGION", &self.region)
            .env_remove("LD_PRELOAD")
            .env("OCL_ICD_VENDORS", vendors);
        c
    }

    /// Runs the guest half of test `test` (the test binary itself, started
    /// again with [`GUEST_ROLE`] set) against this worker, with the region
    /// passed in its environment, and panics with its output and the
    /// worker's log if it fails.
    pub fn run_guest_half(&mut self, test: &str) -> Output {
        let mut c = self.remote(std::env::current_exe().expect("test binary"));
        c.env_remove("LD_PRELOAD")
            .env("AVA_TEST_ROLE", GUEST_ROLE)
            .args(["--exact", test, "--nocapture", "--test-threads=1"]);
        let out = run_capture(c, Duration::from_secs(300));
        assert!(
            out.status.success(),
            "{}",
            remote_failure(self, &format!("guest half of {test}"), &out)
        );
        assert!(
            text(&out.stdout).contains("1 passed"),
            "the guest half ran no test:\n{}",
            text(&out.stdout)
        );
        out
    }
}

/// The value of `AVA_TEST_ROLE` in the guest half of a test.
pub const GUEST_ROLE: &str = "guest";

/// Whether this process is the guest half of a test
/// ([`Stack::run_guest_half`]); it then finds the region in `AVA_REGION`.
pub fn is_guest_half() -> bool {
    std::env::var("AVA_TEST_ROLE").is_ok_and(|r| r == GUEST_ROLE)
}

/// An empty directory for `OCL_ICD_VENDORS` (see [`Stack::remote`]).
pub fn no_vendors_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("ava-no-icd-vendors-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create an empty vendors directory");
        d
    })
    .clone()
}

/// A vendors directory for the ICD loader holding `ava.icd` (the guest
/// library's path), and the host's `pocl.icd` too when `with_native`.
pub fn icd_vendors_dir(tag: &str, with_native: bool) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ava-icd-vendors-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create a vendors directory");
    std::fs::write(d.join("ava.icd"), format!("{}\n", guestlib().display()))
        .expect("write ava.icd");
    if with_native {
        std::fs::copy("/etc/OpenCL/vendors/pocl.icd", d.join("pocl.icd"))
            .expect("the host's /etc/OpenCL/vendors/pocl.icd (apt-get install pocl-opencl-icd)");
    }
    d
}

impl Stack {
    /// The worker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the worker process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.region);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Compiles a C sample from `samples/opencl/NAME.c` into the temp dir.
pub fn build_sample(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/opencl")
        .join(format!("{name}.c"));
    // One file per call: tests of one binary run in parallel, and one must
    // not rewrite a program another is running.
    static BUILT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = BUILT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("ava-sample-{name}-{}-{n}", std::process::id()));
    let st = Command::new("cc")
        .args([
            "-O2",
            "-std=c11",
            "-Wall",
            "-D_GNU_SOURCE",
            "-DCL_TARGET_OPENCL_VERSION=300",
            "-o",
        ])
        .arg(&out)
        .arg(&src)
        .args(["-lOpenCL", "-lpthread", "-lm"])
        .status()
        .expect("cc (gcc) is installed");
    assert!(st.success(), "compiling {}", src.display());
    out
}

/// Runs a command to completion with a timeout, returning its output. Reads
/// stdout and stderr while the command runs, so a command that prints more
/// than a pipe holds (64 KiB) does not block.
pub fn run_capture(mut cmd: Command, timeout: Duration) -> Output {
    use std::io::Read;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn command");
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(st) => break st,
            None if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                let (o, e) = (
                    out.join().unwrap_or_default(),
                    err.join().unwrap_or_default(),
                );
                panic!(
                    "command timed out after {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&o),
                    tail(&String::from_utf8_lossy(&e), 60)
                );
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Bytes of a program's output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `native` and then `remote` (each to completion, within its
/// timeout), printing how long each took under `tag`; returns both outputs.
pub fn run_both(
    tag: &str,
    native: Command,
    native_timeout: Duration,
    remote: Command,
    remote_timeout: Duration,
) -> (Output, Output) {
    let t = Instant::now();
    let n = run_capture(native, native_timeout);
    let native_time = t.elapsed();
    let t = Instant::now();
    let r = run_capture(remote, remote_timeout);
    eprintln!("{tag}: native {native_time:?}, remoted {:?}", t.elapsed());
    (n, r)
}

/// A failed remoted run of `what`: its output, its stderr and the worker's
/// log, for the panic message.
pub fn remote_failure(stack: &mut Stack, what: &str, o: &Output) -> String {
    format!(
        "remoted {what} failed ({}):\nstdout:\n{}\nstderr (tail):\n{}\nworker alive: {}\nworker log (tail):\n{}",
        o.status,
        text(&o.stdout),
        tail(&text(&o.stderr), 40),
        stack.alive(),
        tail(&stack.log(), 40)
    )
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Panics with the first differing line if `native` and `remote` differ.
pub fn assert_same_lines(what: &str, native: &str, remote: &str) {
    if native == remote {
        return;
    }
    for (i, (a, b)) in native.lines().zip(remote.lines()).enumerate() {
        if a != b {
            panic!(
                "{what}: line {} differs:\nnative: {a}\nremote: {b}\n\nnative output:\n{native}\nremote output:\n{remote}",
                i + 1
            );
        }
    }
    panic!(
        "{what}: outputs differ in length ({} native lines, {} remote lines)\nnative output:\n{native}\nremote output:\n{remote}",
        native.lines().count(),
        remote.lines().count()
    );
}

impl Stack {
    /// Starts `ava-worker` with `args` only (no default arena size), for
    /// tests that size the region's channels themselves.
    pub fn start_args(tag: &str, args: &[&str]) -> Stack {
        Self::launch(tag, args, &[])
    }

    /// The guest half of test `test` (see [`Stack::run_guest_half`]) as a
    /// command, not started: for a test that stops or kills it.
    pub fn guest_half_command(&self, test: &str) -> Command {
        let mut c = self.remote(std::env::current_exe().expect("test binary"));
        c.env_remove("LD_PRELOAD")
            .env("AVA_TEST_ROLE", GUEST_ROLE)
            .args(["--exact", test, "--nocapture", "--test-threads=1"]);
        c
    }

    /// Waits (within a generous deadline) until the worker's log has a
    /// line that contains every one of `parts`; returns that line.
    pub fn wait_for_log_line(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log();
            if let Some(l) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return l.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the worker logged no line with {parts:?}:\n{}",
                tail(&log, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The value of field `name` (`name=value`) on a log line.
pub fn log_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// A started child process, killed (SIGKILL) and reaped when dropped, so
/// that a failing test leaves no guest running; its stdout is read line by
/// line on a thread.
pub struct Spawned {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Spawned {
    /// Starts `cmd` with its stdout piped (stderr as `cmd` says).
    pub fn start(mut cmd: Command) -> Spawned {
        use std::io::BufRead;
        cmd.stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("start the child process");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Spawned {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Waits (within `timeout`) for a stdout line that contains `text`;
    /// returns it. Panics with what the child printed if none comes.
    pub fn wait_for_line(&mut self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(text) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "the child printed no line with {text:?} within {timeout:?} (exited: {:?}):\n{}",
                    self.child.try_wait().ok().flatten(),
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Everything the child printed so far (waiting for no more).
    pub fn printed(&mut self) -> String {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }

    /// Waits (within `timeout`) for the child to exit; `None` if it is
    /// still running then.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait for the child") {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// OpenCL entry points loaded into this process, in the function table
/// generated from the specification (`ava_worker::opencl::Api`): the guest
/// library's (remoted) or the host's own (native).
pub struct Cl {
    pub api: ava_worker::opencl::Api,
    _lib: libloading::Library,
}

impl Cl {
    /// The guest library: calls go to the worker named by `AVA_REGION`.
    pub fn guest() -> Cl {
        Cl::load(guestlib().as_os_str())
    }

    /// The host's OpenCL library (through its ICD loader).
    pub fn native() -> Cl {
        Cl::load(std::ffi::OsStr::new("libOpenCL.so.1"))
    }

    fn load(path: &std::ffi::OsStr) -> Cl {
        // SAFETY: loading an OpenCL library runs no initialisers of note.
        let lib = unsafe { libloading::Library::new(path) }.expect("load an OpenCL library");
        Cl {
            api: ava_worker::opencl::Api::load(&lib),
            _lib: lib,
        }
    }
}

/// An OpenCL object as the application holds it.
pub type ClId = *mut std::ffi::c_void;

/// The first platform and device, a context on it and an in-order queue.
pub struct ClSetup {
    pub platform: ClId,
    pub device: ClId,
    pub context: ClId,
    pub queue: ClId,
}

impl ClSetup {
    /// Creates them through `cl`, asserting that every call succeeds.
    pub fn new(cl: &Cl) -> ClSetup {
        let a = &cl.api;
        let null = std::ptr::null_mut();
        let mut platform: ClId = null;
        let mut device: ClId = null;
        let mut err = 0;
        // SAFETY: every pointer passed is a live local or NULL where the
        // functions allow it.
        unsafe {
            assert_eq!(
                a.clGetPlatformIDs.expect("clGetPlatformIDs")(1, &mut platform, null.cast()),
                0
            );
            assert_eq!(
                a.clGetDeviceIDs.expect("clGetDeviceIDs")(
                    platform,
                    0xFFFF_FFFF,
                    1,
                    &mut device,
                    null.cast()
                ),
                0
            );
            let context = a.clCreateContext.expect("clCreateContext")(
                std::ptr::null(),
                1,
                &device,
                None,
                null,
                &mut err,
            );
            assert_eq!(err, 0, "clCreateContext");
            let queue =
                a.clCreateCommandQueue.expect("clCreateCommandQueue")(context, device, 0, &mut err);
            assert_eq!(err, 0, "clCreateCommandQueue");
            ClSetup {
                platform,
                device,
                context,
                queue,
            }
        }
    }
}

/// Runs `clinfo -l` natively and through the guest library against
/// `stack`, requires both to succeed and to list a platform, and requires
/// the same lines.
pub fn assert_clinfo_list_same(stack: &mut Stack) {
    let list = |mut c: Command| {
        c.arg("-l");
        run_capture(c, Duration::from_secs(60))
    };
    let native = list(Command::new("clinfo"));
    let remote = list(stack.remote("clinfo"));
    // Both must succeed: two failed runs can print the same (nothing).
    assert!(
        native.status.success(),
        "native clinfo -l failed ({}):\n{}",
        native.status,
        text(&native.stderr)
    );
    assert!(
        remote.status.success(),
        "{}",
        remote_failure(stack, "clinfo -l", &remote)
    );
    let (n, r) = (text(&native.stdout), text(&remote.stdout));
    assert!(
        n.contains("Platform #0"),
        "native clinfo -l lists nothing:\n{n}"
    );
    assert_same_lines("clinfo -l", &n, &r);
}
