//! A guest waiting in a call while its worker dies, or while it (or the
//! whole host) is paused.
//!
//! The guest watches the worker's heartbeat while it waits for a reply: a
//! heartbeat stuck for `AVA_WORKER_TIMEOUT_MS` means a dead worker, and the
//! call fails with the API's transport error (`CallError::WorkerGone` under
//! the hood) instead of waiting forever. A gap of more than a second
//! between two of the guest's looks at the heartbeat means the guest itself
//! was not running (a stopped process, a paused VM or host): the worker did
//! not get to beat either, so the gap is not held against it.
//!
//! Each guest is a child process (this test binary again) whose
//! environment names the region and the worker timeout; the test stops,
//! continues and kills processes with `kill(1)`.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

mod common;

remoting::generated! {
    mod remote = "testapi_guest.rs";
}

/// Marks the child process that plays the guest; its value names the part.
const GUEST_ROLE: &str = "AVA_TEST_DEAD_WORKER_GUEST";
/// The API's transport error (testapi/build.rs).
const TRANSPORT_ERROR: i32 = -4;
/// How long a guest waits for a worker whose heartbeat does not move.
const WORKER_TIMEOUT_MS: u64 = 1000;
/// A pause several times as long as that.
const PAUSE: Duration = Duration::from_millis(4 * WORKER_TIMEOUT_MS);
/// How long the guest's long call lasts on the worker: well past the pause.
const CALL_MS: u32 = 8000;
/// The worker takes a guest for dead only after this much silence: never
/// within these tests (a stopped guest does not beat).
const STALE_MS: &str = "60000";

/// A guest child with its stdout read line by line; killed on drop.
struct Guest {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Guest {
    /// Starts the guest part `part` against `worker`.
    fn start(test: &str, part: &str, worker: &common::Worker) -> Guest {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(GUEST_ROLE, part)
            .env("AVA_REGION", &worker.region)
            .env("AVA_WORKER_TIMEOUT_MS", WORKER_TIMEOUT_MS.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the guest");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Guest {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (generously) for a stdout line that contains `text`.
    fn wait_for_line(&mut self, text: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(text) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "the guest printed no {text:?} line:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits (within a deadline far beyond any timeout involved) for the
    /// guest to exit; returns its status, everything it printed and its
    /// stderr. Panics if it is still running then: it hangs.
    fn finish(mut self) -> (std::process::ExitStatus, String, String) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait for the guest") {
                break st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the guest hangs:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (status, self.seen.join("\n"), err)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` (a `kill(1)` name: KILL, STOP, CONT) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let st = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{signal} {pid}");
}

/// The pid of the worker serving `worker`'s region (its lease holder).
fn worker_pid(worker: &common::Worker) -> u32 {
    let pid = transport::Region::open(&worker.region)
        .expect("open the region")
        .worker_pid();
    assert_ne!(pid, 0);
    pid
}

/// The guest's part: an object; then, announced on stdout, a call that
/// lasts `CALL_MS` on the worker; what it returned; then the object again.
/// With `expect_worker_gone`, the call and the next must fail with the
/// transport error, and asking for the connection directly must say why:
/// `CallError::WorkerGone`.
fn guest(expect_worker_gone: bool) {
    // The guest library's warnings, on stderr for the test to read.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let mut st = 0;
    // SAFETY: `st` is a live i32.
    let obj = unsafe { remote::ta_create(4, &mut st) };
    assert_eq!(st, 0, "ta_create");
    println!("calling ta_sleep");
    // SAFETY: no pointers.
    let rc = unsafe { remote::ta_sleep(CALL_MS) };
    println!("ta_sleep returned {rc}");
    let mut v = 0;
    // SAFETY: a handle the guest library returned; a live i32.
    let got = unsafe { remote::ta_get(obj, &mut v) };
    println!("ta_get returned {got} value {v}");
    if expect_worker_gone {
        assert_eq!(rc, TRANSPORT_ERROR);
        assert_eq!(got, TRANSPORT_ERROR);
        // Once a call found the worker gone, later calls fail at once, as
        // long as its heartbeat stands still: already when they ask for
        // the connection.
        match remoting::guest::connection(&remote::API, remoting::guest::no_region) {
            Err(remoting::guest::CallError::WorkerGone(..)) => println!("WorkerGone"),
            Err(e) => panic!("a call to a dead worker failed with {e}"),
            Ok(_) => panic!("a dead worker's connection was handed out"),
        }
    } else {
        assert_eq!(rc, 0, "the call in progress during the pause");
        assert_eq!((got, v), (0, 4));
        remoting::guest::shutdown();
    }
}

const KILLED: &str = "a_call_waiting_on_a_killed_worker_fails_with_the_transport_error";

#[test]
fn a_call_waiting_on_a_killed_worker_fails_with_the_transport_error() {
    if std::env::var_os(GUEST_ROLE).is_some() {
        guest(true);
        return;
    }
    let worker = common::Worker::start("deadworker", &[("AVA_STALE_MS", STALE_MS)]);
    let mut g = Guest::start(KILLED, "killed", &worker);
    g.wait_for_line("calling ta_sleep");
    // Let the call reach the worker (it lasts far longer than this).
    std::thread::sleep(Duration::from_millis(500));
    signal(worker_pid(&worker), "KILL");
    let (status, printed, err) = g.finish();
    assert!(status.success(), "{status}\n{printed}\n{err}");
    assert!(
        printed.contains(&format!("ta_sleep returned {TRANSPORT_ERROR}")),
        "{printed}"
    );
    assert!(printed.contains("WorkerGone"), "{printed}");
    assert!(
        err.contains("ta_sleep: the worker is not responding"),
        "{err}"
    );
}

const PAUSED: &str = "a_paused_guest_does_not_take_its_worker_for_dead";

/// Only the guest is stopped, for several of its worker timeouts: the call
/// it was waiting in completes.
#[test]
fn a_paused_guest_does_not_take_its_worker_for_dead() {
    if std::env::var_os(GUEST_ROLE).is_some() {
        guest(false);
        return;
    }
    let worker = common::Worker::start("pausedguest", &[("AVA_STALE_MS", STALE_MS)]);
    let mut g = Guest::start(PAUSED, "paused", &worker);
    g.wait_for_line("calling ta_sleep");
    std::thread::sleep(Duration::from_millis(500));
    signal(g.pid(), "STOP");
    std::thread::sleep(PAUSE);
    signal(g.pid(), "CONT");
    let (status, printed, err) = g.finish();
    assert!(
        status.success(),
        "{status}\n{printed}\n{err}\nworker log:\n{}",
        worker.log()
    );
    assert!(printed.contains("ta_sleep returned 0"), "{printed}");
    assert!(!err.contains("not responding"), "{err}");
    let released = worker.wait_for_line("guest released its channel");
    assert!(!worker.log().contains("guest stopped beating"));
    assert_eq!(field(&released, "calls"), Some("3"), "{released}");
    assert_eq!(field(&released, "rejected"), Some("0"), "{released}");
}

const PAUSED_HOST: &str = "a_pause_of_guest_and_worker_together_is_not_a_dead_worker";

/// Guest and worker are stopped together (as when the whole host, or a VM
/// with its worker, is suspended) for several worker timeouts; the guest
/// is continued first, and the worker a moment later. On its first look the
/// guest finds the worker's heartbeat where it was before the pause, but
/// also that it was not running itself for a while: it waits on, and the
/// call completes once the worker beats again.
#[test]
fn a_pause_of_guest_and_worker_together_is_not_a_dead_worker() {
    if std::env::var_os(GUEST_ROLE).is_some() {
        guest(false);
        return;
    }
    let worker = common::Worker::start("pausedhost", &[("AVA_STALE_MS", STALE_MS)]);
    let wpid = worker_pid(&worker);
    let mut g = Guest::start(PAUSED_HOST, "paused-host", &worker);
    g.wait_for_line("calling ta_sleep");
    std::thread::sleep(Duration::from_millis(500));
    signal(wpid, "STOP");
    signal(g.pid(), "STOP");
    std::thread::sleep(PAUSE);
    signal(g.pid(), "CONT");
    // Less than the worker timeout: the guest must not give up meanwhile.
    std::thread::sleep(Duration::from_millis(WORKER_TIMEOUT_MS / 4));
    signal(wpid, "CONT");
    let (status, printed, err) = g.finish();
    assert!(
        status.success(),
        "{status}\n{printed}\n{err}\nworker log:\n{}",
        worker.log()
    );
    assert!(printed.contains("ta_sleep returned 0"), "{printed}");
    assert!(!err.contains("not responding"), "{err}");
    let released = worker.wait_for_line("guest released its channel");
    assert_eq!(field(&released, "calls"), Some("3"), "{released}");
    assert_eq!(field(&released, "rejected"), Some("0"), "{released}");
}

/// The value of field `name` (`name=value`) on a worker log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}
