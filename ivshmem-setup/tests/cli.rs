//! The `ivshmem-setup` command line on the host: creating, inspecting and
//! removing regions, printing VM configuration, probing a fake sysfs, and a
//! ping/echo exchange between two processes over a `/dev/shm` file.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{ChildGuard, ShmFile, run, stdout_ok};
use ivshmem_setup::fake_sysfs::FakeSysfs;
use nix::sys::signal::Signal;

#[test]
fn create_inspect_remove() {
    let shm = ShmFile::new("cli");
    let out = stdout_ok(&[
        "create",
        shm.arg(),
        "--size",
        "16M",
        "--channels",
        "2",
        "--mode",
        "660",
    ]);
    assert!(
        out.starts_with(&format!(
            "created {} (16 MiB): 2 channel(s), 64 KiB rings",
            shm.arg()
        )),
        "{out}"
    );
    assert_eq!(std::fs::metadata(shm.path()).unwrap().len(), 16 << 20);

    let text = stdout_ok(&["inspect", shm.arg()]);
    assert!(
        text.contains("file size:   16777216 bytes (16 MiB)"),
        "{text}"
    );
    assert!(text.contains("worker:      none, heartbeat 0"), "{text}");
    let rows: Vec<_> = text
        .lines()
        .skip_while(|l| !l.starts_with("channel"))
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .collect();
    assert_eq!(
        rows,
        [["0", "free", "0", "0", "0"], ["1", "free", "0", "0", "0"]]
    );

    // Existing files are kept unless --force.
    let again = run(&["create", shm.arg(), "--size", "16M"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists; pass --force"));

    stdout_ok(&["remove", shm.arg()]);
    assert!(!shm.path().exists());
}

#[test]
fn create_explains_sizes_that_cannot_work() {
    let shm = ShmFile::new("bad-size");
    for (args, msg) in [
        (
            vec!["--size", "24M"],
            "not a power of two; an ivshmem BAR must be (try 16 MiB or 32 MiB)",
        ),
        (
            vec!["--size", "256K"],
            "use a larger --size or fewer/smaller channels",
        ),
        (
            vec!["--size", "16M", "--ring-size", "1000"],
            "must be a power of two of at least 64 bytes",
        ),
        (vec!["--size", "sixteen"], "invalid size 'sixteen'"),
    ] {
        let mut all = vec!["create", shm.arg()];
        all.extend(args);
        let out = run(&all);
        assert!(!out.status.success(), "{all:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{all:?}: {err}");
        assert!(!shm.path().exists());
    }
}

#[test]
fn qemu_args_and_libvirt_xml() {
    let shm = ShmFile::new("cfg");
    stdout_ok(&["create", shm.arg(), "--size", "32M"]);
    let args = stdout_ok(&["qemu-args", shm.arg(), "--id", "hostmem"]);
    assert_eq!(
        args.trim_end(),
        format!(
            "-object memory-backend-file,id=hostmem,size=32M,share=on,mem-path={} -device ivshmem-plain,memdev=hostmem",
            shm.arg()
        )
    );
    let name = shm.path().file_name().unwrap().to_str().unwrap();
    let xml = stdout_ok(&["libvirt-xml", shm.arg()]);
    assert!(
        xml.starts_with(&format!(
            "<!-- libvirt maps the region file /dev/shm/{name} (32 MiB)"
        )),
        "{xml}"
    );
    assert!(xml.contains(&format!("<shmem name='{name}'>\n  <model type='ivshmem-plain'/>\n  <size unit='M'>32</size>\n</shmem>\n")), "{xml}");
    let xml = stdout_ok(&["libvirt-xml", shm.arg(), "--name", "vm7"]);
    assert!(xml.contains("<shmem name='vm7'>"), "{xml}");
}

#[test]
fn probe_on_a_fake_sysfs() {
    let dir = tempfile::tempdir().unwrap();
    let sys = FakeSysfs::at(dir.path());
    let root = dir.path().to_str().unwrap();

    let out = run(&["probe", "--sysfs", root]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ivshmem device (PCI 1af4:1110)"));

    let res = sys.add_ivshmem("0000:00:05.0", 1 << 20);
    let out = run(&["probe", "--sysfs", root]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ivshmem device 0000:00:05.0: BAR2 holds no valid region"),
        "{err}"
    );

    stdout_ok(&["create", res.to_str().unwrap(), "--size", "1M", "--force"]);
    let out = stdout_ok(&["probe", "--sysfs", root]);
    assert_eq!(out.lines().next(), Some(res.to_str().unwrap()));
    assert_eq!(sys.enable_value("0000:00:05.0"), "1");
}

fn echo(paths: &[&str], extra: &[&str], dir: &std::path::Path) -> ChildGuard {
    let mut cmd = Command::new(common::BIN);
    cmd.arg("echo").args(paths).args(extra).env("NO_COLOR", "1");
    ChildGuard::spawn(
        cmd,
        "ivshmem-setup echo",
        &dir.join("echo.out"),
        &dir.join("echo.err"),
    )
}

#[test]
fn ping_and_echo_between_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let shm = ShmFile::new("ping");
    stdout_ok(&["create", shm.arg(), "--size", "1M"]);
    let mut server = echo(&[shm.arg()], &[], dir.path());

    let out = stdout_ok(&["ping", shm.arg(), "--count", "2000"]);
    assert!(out.contains("ping: 2000 round trips on channel 0"), "{out}");
    assert!(out.ends_with("ping OK\n"), "{out}");

    // The worker lease is visible while echo runs.
    let text = stdout_ok(&["inspect", shm.arg()]);
    assert!(text.contains("(alive)"), "{text}");
    let removed = run(&["remove", shm.arg()]);
    assert!(String::from_utf8_lossy(&removed.stderr).contains("is served by the live worker"));

    // A second echo on the same region is refused.
    let second = run(&["echo", shm.arg(), "--count", "1"]);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already served by worker pid"));

    server.signal(Signal::SIGINT);
    assert!(server.wait(Duration::from_secs(10)).success());
    let served = std::fs::read_to_string(dir.path().join("echo.out")).unwrap();
    assert!(
        served.contains("echo: answered 2000 messages on 1 channel(s) of 1 region(s)"),
        "{served}"
    );
    let text = stdout_ok(&["inspect", shm.arg()]);
    assert!(text.contains("worker:      none"), "lease released: {text}");
}

#[test]
fn one_echo_serves_two_regions_until_its_count() {
    let dir = tempfile::tempdir().unwrap();
    let a = ShmFile::new("a");
    let b = ShmFile::new("b");
    stdout_ok(&["create", a.arg(), "--size", "1M"]);
    stdout_ok(&["create", b.arg(), "--size", "1M"]);
    let mut server = echo(&[a.arg(), b.arg()], &["--count", "300"], dir.path());
    stdout_ok(&["ping", a.arg(), "--count", "100"]);
    stdout_ok(&["ping", b.arg(), "--count", "200"]);
    assert!(server.wait(Duration::from_secs(10)).success());
    let served = std::fs::read_to_string(dir.path().join("echo.out")).unwrap();
    assert!(served.contains("(per region: [100, 200])"), "{served}");
}

#[test]
fn ping_without_echo_fails_clearly() {
    let shm = ShmFile::new("noecho");
    stdout_ok(&["create", shm.arg(), "--size", "1M"]);
    let out = run(&["ping", shm.arg(), "--count", "1", "--timeout", "0.1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no answer to message 1"), "{err}");
}
