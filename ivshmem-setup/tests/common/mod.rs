//! Helpers shared by the integration tests: the binary under test, region
//! files that remove themselves, and child processes that are stopped when
//! the test ends, whether it passes or fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The `ivshmem-setup` binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_ivshmem-setup");

/// `ivshmem-setup ARGS...`, run to completion.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run ivshmem-setup")
}

/// Stdout of a successful `ivshmem-setup ARGS...`.
pub fn stdout_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "ivshmem-setup {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A path in `/dev/shm` that no other test or run uses; the file (if any)
/// is removed when the guard is dropped.
pub struct ShmFile {
    path: PathBuf,
}

impl ShmFile {
    /// A fresh name: `/dev/shm/ava-test-<pid>-<n>-<tag>`.
    pub fn new(tag: &str) -> ShmFile {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!(
            "/dev/shm/ava-test-{}-{n}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        ShmFile { path }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a string, for command lines.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A child process that is stopped (SIGTERM, then SIGKILL) if it is still
/// running when the guard is dropped.
pub struct ChildGuard {
    child: Option<Child>,
    what: String,
}

impl ChildGuard {
    /// Starts `cmd` with stdout and stderr going to the given files.
    pub fn spawn(mut cmd: Command, what: &str, stdout: &Path, stderr: &Path) -> ChildGuard {
        let out = std::fs::File::create(stdout).expect("create stdout file");
        let err = std::fs::File::create(stderr).expect("create stderr file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        ChildGuard {
            child: Some(child),
            what: what.to_owned(),
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.id() as i32)
    }

    /// The child's process id (while it has not been waited for).
    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Whether the child is still running (false once it has exited).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: Signal) {
        let _ = kill(self.pid(), signal);
    }

    /// Waits for the child to exit, at most `limit`; panics past it (the
    /// guard then kills it).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("wait for child") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {limit:?}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The `vmtest` scripts.
pub fn vmtest_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vmtest")
}

/// Runs a vmtest script; panics with its output when it fails.
pub fn script(name: &str, args: &[&str]) -> String {
    let path = vmtest_dir().join(name);
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{}{}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One test at a time, so that the timings mean something on a small
/// machine (the two-VM test runs its two VMs together).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
