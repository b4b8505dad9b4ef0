//! `ava-worker --config FILE`: VMs named in TOML, sharing an executor when
//! they name one isolation group; a file that does not check is refused
//! with its file, line and column.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("ava-config-{name}-{}.toml", std::process::id()));
    std::fs::write(&p, text).expect("write the configuration");
    p
}

#[test]
fn a_broken_file_is_refused_with_its_position() {
    let file = write(
        "broken",
        "[[vm]]\nname = \"vm1\"\nregoin = \"/dev/shm/x\"\n",
    );
    let out = Command::new(common::worker_bin())
        .arg("--config")
        .arg(&file)
        .output()
        .expect("run ava-worker");
    let err = common::text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{}:3:1", file.display())) && err.contains("unknown field `regoin`"),
        "{err}"
    );
    let _ = std::fs::remove_file(&file);
}

#[test]
fn vms_of_a_file_are_named_and_grouped() {
    let pid = std::process::id();
    let region = |n: u32| format!("/dev/shm/ava-test-config-{pid}-{n}");
    let file = write(
        "good",
        &format!(
            "[[vm]]\nname = \"alpha\"\nregion = \"{}\"\nisolation_group = \"team\"\nweight = 2\n\n\
             [[vm]]\nname = \"beta\"\nregion = \"{}\"\nisolation_group = \"team\"\n\n\
             [[vm]]\nname = \"gamma\"\nregion = \"{}\"\n",
            region(0),
            region(1),
            region(2)
        ),
    );
    let log = std::env::temp_dir().join(format!("ava-config-{pid}.log"));
    let mut child = Command::new(common::worker_bin())
        .arg("--config")
        .arg(&file)
        .args(["--arena-size", "1048576", "--heap-size", "0"])
        .env("AVA_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start ava-worker");
    let start = Instant::now();
    while !(0..3).all(|n| {
        transport::Region::open(std::path::Path::new(&region(n)))
            .is_ok_and(|r| r.worker_heartbeat() > 0)
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A guest of `beta` is served, and the worker calls the VM by its name.
    let mut c = Command::new("clinfo");
    c.arg("-l")
        .env("AVA_REGION", region(1))
        .env("LD_PRELOAD", common::guestlib())
        .env("OCL_ICD_VENDORS", common::no_vendors_dir());
    let out = common::run_capture(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    assert!(common::text(&out.stdout).contains("Platform #0"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("guest attached") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    for n in 0..3 {
        let _ = std::fs::remove_file(region(n));
    }
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&log);
    assert!(
        text.lines()
            .any(|l| l.contains("guest attached") && l.contains("vm=\"beta\"")),
        "{text}"
    );
    let started: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("executor started"))
        .collect();
    assert_eq!(started.len(), 2, "{text}");
    assert!(
        started
            .iter()
            .any(|l| l.contains("group=team") && l.contains("regions=2")),
        "{text}"
    );
    // Every VM is named in its executor's group: gamma is a group of its
    // own, called after it.
    assert!(started.iter().any(|l| l.contains("group=gamma")), "{text}");
}
