//! Fault containment: each isolation group of VMs (by default each VM) is
//! served by an executor process of its own. A call that aborts the process
//! executing it (`ta_abort`, as a driver's fatal error would) takes down
//! only its group's executor: the caller gets the API's error instead of a
//! hang, the supervisor logs what was executing and restarts the executor,
//! a new guest of that VM is served again, and a guest of another VM keeps
//! getting correct results throughout. VMs named in one group share one
//! executor process.
//!
//! Guests run as processes of their own (this test binary again), which
//! find their region in `AVA_REGION`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;

remoting::generated! {
    mod remote = "testapi_guest.rs";
}

const ROLE: &str = "AVA_TEST_FAULT_ROLE";
const CRASH: &str = "a_crash_in_one_group_leaves_the_others_working";
const SHARED: &str = "vms_named_in_one_group_share_one_executor";
/// Calls of the steady guest.
const ROUNDS: i32 = 400;

/// A guest that keeps creating, changing, reading and releasing objects,
/// checking every result; prints when it starts and when it is done.
fn steady_guest() {
    let mut first = true;
    for i in 0..ROUNDS {
        let mut st = -99;
        // SAFETY: the test API's entry points get live locals and the object
        // they returned.
        unsafe {
            let obj = remote::ta_create(i, &mut st);
            assert_eq!(st, 0, "ta_create in round {i}");
            assert_eq!(remote::ta_add(obj, 1), 0, "ta_add in round {i}");
            let mut v = 0;
            assert_eq!(remote::ta_get(obj, &mut v), 0, "ta_get in round {i}");
            assert_eq!(v, i + 1, "round {i}");
            assert_eq!(remote::ta_release(obj), 0, "ta_release in round {i}");
        }
        if first {
            println!("steady: started");
            first = false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("steady: {ROUNDS} rounds correct");
    remoting::guest::shutdown();
}

/// A guest that crashes its executor, then goes on as a new guest would.
fn crashing_guest() {
    let mut st = -99;
    // SAFETY: as in `steady_guest`.
    unsafe {
        let obj = remote::ta_create(7, &mut st);
        assert_eq!(st, 0);
        // The executor aborts in this call: the guest gets the transport
        // error at once, not after its worker timeout.
        let t = Instant::now();
        assert_eq!(i64::from(remote::ta_abort()), remote::TRANSPORT_ERROR);
        println!("crasher: ta_abort failed after {:?}", t.elapsed());
        // The next calls open a new channel, served by the restarted
        // executor; the objects of the dead one are gone.
        let again = remote::ta_create(8, &mut st);
        assert_eq!(st, 0, "a call after the restart");
        let mut v = 0;
        assert_eq!(remote::ta_get(again, &mut v), 0);
        assert_eq!(v, 8);
        assert_eq!(
            remote::ta_get(obj, &mut v),
            -1,
            "an object of the dead executor"
        );
    }
    println!("crasher: served again after the restart");
    remoting::guest::shutdown();
}

fn spawn_guest(test: &str, role: &str, region: &std::path::Path) -> Child {
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env("AVA_REGION", region)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.spawn().expect("start a guest")
}

/// Waits for `child` to print a line containing `text`; returns the lines
/// read so far.
fn wait_for(child: &mut Child, text: &str) -> Vec<String> {
    let out = child.stdout.as_mut().expect("piped");
    let mut lines = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.expect("guest output");
        let done = line.contains(text);
        lines.push(line);
        if done {
            return lines;
        }
    }
    panic!("the guest ended without printing {text:?}: {lines:?}");
}

fn finish(what: &str, child: Child, worker: &common::Worker) -> String {
    let out = common::output_within(what, child, worker);
    common::check_guest(what, &out, worker);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_crash_in_one_group_leaves_the_others_working() {
    match std::env::var(ROLE).as_deref() {
        Ok("steady") => return steady_guest(),
        Ok("crasher") => return crashing_guest(),
        _ => {}
    }
    let worker = common::Worker::start_ava_worker_with("fault", 2, "testapi", &[]);
    let (crashing_vm, other_vm) = (&worker.regions[0], &worker.regions[1]);
    let mut steady = spawn_guest(CRASH, "steady", other_vm);
    wait_for(&mut steady, "steady: started");
    let crasher = spawn_guest(CRASH, "crasher", crashing_vm);
    let crashed = finish("the crashing guest", crasher, &worker);
    assert!(
        crashed.contains("served again after the restart"),
        "{crashed}"
    );
    let out = finish("the guest of the other VM", steady, &worker);
    assert!(out.contains(&format!("{ROUNDS} rounds correct")), "{out}");

    // The supervisor saw the death at once, said what was running, and
    // restarted only that group's executor.
    let crashing_group = crashing_vm
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let other_group = other_vm.file_name().unwrap().to_string_lossy().into_owned();
    let died = worker.wait_for_line("executor died");
    assert!(died.contains(&crashing_group), "{died}");
    let executing = worker.wait_for_line("the executor died executing");
    assert!(executing.contains("ta_abort"), "{executing}");
    assert!(executing.contains("api=testapi"), "{executing}");
    worker.wait_for_line("restarting the executor");
    let log = worker.log();
    let started = |group: &str| {
        log.lines()
            .filter(|l| l.contains("executor started") && l.contains(&format!("group={group}")))
            .count()
    };
    assert_eq!(started(&crashing_group), 2, "{log}");
    assert_eq!(
        started(&other_group),
        1,
        "the other group's executor never restarted:\n{log}"
    );
    assert_eq!(log.matches("executor died group=").count(), 1, "{log}");
}

/// Two VMs named in one group are served by one executor process; both are
/// served.
#[test]
fn vms_named_in_one_group_share_one_executor() {
    if std::env::var(ROLE).as_deref() == Ok("steady") {
        return steady_guest();
    }
    let probe = common::Worker::fresh_region_paths("shared", 2);
    let group = format!("team={},{}", probe[0].display(), probe[1].display());
    let worker = common::Worker::start_ava_worker_with(
        "shared",
        2,
        "testapi",
        &["--isolation-group", &group],
    );
    let guests: Vec<Child> = worker
        .regions
        .iter()
        .map(|r| spawn_guest(SHARED, "steady", r))
        .collect();
    for g in guests {
        let out = finish("a guest of the shared group", g, &worker);
        assert!(out.contains(&format!("{ROUNDS} rounds correct")), "{out}");
    }
    let log = worker.log();
    let started: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("executor started"))
        .collect();
    assert_eq!(started.len(), 1, "{log}");
    assert!(
        started[0].contains("group=team") && started[0].contains("regions=2"),
        "{log}"
    );
    // Both VMs' guests named their API on the one executor.
    let pid = started[0]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .expect("the executor's pid");
    let serving = log
        .lines()
        .filter(|l| l.contains("executor serving") && l.contains(&format!("pid={pid}")))
        .count();
    assert_eq!(serving, 1, "{log}");
}
