//! End-to-end tests in real VMs: QEMU (TCG) boots a busybox initramfs that
//! holds this crate's binary; the guest probes its ivshmem device and pings
//! an `echo` process on the host through the region.
//!
//! What they need is installed when missing (`vmtest/install-deps.sh`, as
//! root); the kernel is Debian's cloud kernel, fetched once into
//! `target/tmp/vmtest` (`vmtest/fetch-kernel.sh`). If that fails the tests
//! fail, saying why: they never skip. Set `AVA_VM_KERNEL` to use another
//! kernel image, `AVA_VM_GUEST_BIN` to put another `ivshmem-setup` build in
//! the guest (e.g. a static one). Run them alone, with their timings shown:
//!
//! ```text
//! cargo test -p ivshmem-setup --test vm -- --nocapture
//! ```

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{ChildGuard, ShmFile, script, serial, stdout_ok, vmtest_dir};
use nix::sys::signal::Signal;

/// The kernel and initramfs every test VM boots.
struct VmKit {
    kernel: PathBuf,
    initrd: PathBuf,
}

fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("vmtest")
}

/// Installs the tools, fetches the kernel and builds the initramfs, once.
fn kit() -> &'static VmKit {
    static KIT: OnceLock<VmKit> = OnceLock::new();
    KIT.get_or_init(|| {
        let t = Instant::now();
        script("install-deps.sh", &[]);
        for tool in ["qemu-system-x86_64", "busybox", "cpio"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "{tool} is missing and could not be installed: the VM tests need qemu-system-x86, busybox-static and cpio (run vmtest/install-deps.sh as root)"
            );
        }
        let kernel = match std::env::var_os("AVA_VM_KERNEL") {
            Some(k) => PathBuf::from(k),
            None => PathBuf::from(script(
                "fetch-kernel.sh",
                &[work_dir().join("kernel").to_str().unwrap()],
            )),
        };
        // The binary built for these tests, with its shared libraries; or
        // another build (e.g. a static musl one) named by AVA_VM_GUEST_BIN.
        let guest_bin = std::env::var("AVA_VM_GUEST_BIN").unwrap_or_else(|_| common::BIN.to_owned());
        let initrd = work_dir().join("initrd.cpio.gz");
        script(
            "build-initramfs.sh",
            &[
                initrd.to_str().unwrap(),
                &format!("{guest_bin}=/bin/ivshmem-setup"),
            ],
        );
        eprintln!("vm kit ready in {:.1}s: {}", t.elapsed().as_secs_f64(), kernel.display());
        VmKit { kernel, initrd }
    })
}

/// A booting VM (`vmtest/run-vm.sh`), killed with its QEMU if dropped early.
struct Vm {
    guard: ChildGuard,
    log: PathBuf,
    stderr: PathBuf,
}

/// How a VM ended.
struct VmResult {
    /// Exit status of run-vm.sh: the guest command's rc, 124 on timeout.
    code: Option<i32>,
    /// The serial console.
    console: String,
    /// What run-vm.sh said.
    stderr: String,
}

impl Vm {
    fn start(dir: &Path, tag: &str, region: Option<&Path>, extra: &[&str], cmd: &str) -> Vm {
        let kit = kit();
        let log = dir.join(format!("{tag}.console"));
        let stderr = dir.join(format!("{tag}.stderr"));
        let mut c = Command::new("bash");
        c.arg(vmtest_dir().join("run-vm.sh"))
            .arg("--kernel")
            .arg(&kit.kernel)
            .arg("--initrd")
            .arg(&kit.initrd)
            .arg("--timeout")
            .arg("120")
            .arg("--log")
            .arg(&log)
            .args(["--cmd", cmd])
            .args(extra);
        if let Some(r) = region {
            c.arg("--region").arg(r);
        }
        let guard = ChildGuard::spawn(
            c,
            &format!("VM {tag}"),
            &dir.join(format!("{tag}.stdout")),
            &stderr,
        );
        Vm { guard, log, stderr }
    }

    fn finish(mut self) -> VmResult {
        let status = self.guard.wait(Duration::from_secs(150));
        VmResult {
            code: status.code(),
            console: std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .replace('\r', ""),
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }
}

impl VmResult {
    fn assert_code(&self, want: i32) {
        assert_eq!(
            self.code,
            Some(want),
            "VM exit status; run-vm.sh said:\n{}\nconsole:\n{}",
            self.stderr,
            self.console
        );
    }

    fn assert_console(&self, needle: &str) {
        assert!(
            self.console.contains(needle),
            "console lacks {needle:?}:\n{}",
            self.console
        );
    }
}

fn echo(paths: &[&Path], extra: &[&str], dir: &Path) -> ChildGuard {
    let mut cmd = Command::new(common::BIN);
    cmd.arg("echo").args(paths).args(extra).env("NO_COLOR", "1");
    ChildGuard::spawn(
        cmd,
        "ivshmem-setup echo",
        &dir.join("echo.out"),
        &dir.join("echo.err"),
    )
}

fn create(shm: &ShmFile, size: &str) {
    stdout_ok(&["create", shm.arg(), "--size", size]);
}

const PING: &str =
    "ivshmem-setup probe && p=$(ivshmem-setup probe) && ivshmem-setup ping \"$p\" --count 1000";

fn timed<T>(name: &str, f: impl FnOnce() -> T) -> T {
    kit();
    let _one_at_a_time = serial();
    let t = Instant::now();
    let r = f();
    eprintln!("vm test {name}: {:.1}s", t.elapsed().as_secs_f64());
    r
}

#[test]
fn guest_pings_host_over_ivshmem() {
    timed("guest_pings_host_over_ivshmem", || {
        let dir = tempfile::tempdir().unwrap();
        let shm = ShmFile::new("vm");
        create(&shm, "16M");
        let mut server = echo(&[shm.path()], &[], dir.path());
        let vm = Vm::start(dir.path(), "vm", Some(shm.path()), &[], PING).finish();
        vm.assert_code(0);
        vm.assert_console("/sys/bus/pci/devices/");
        vm.assert_console("ping: 1000 round trips on channel 0");
        vm.assert_console("ping OK");
        if let Some(line) = vm.console.lines().find(|l| l.starts_with("ping: ")) {
            eprintln!("  guest: {line}");
        }
        server.signal(Signal::SIGINT);
        assert!(server.wait(Duration::from_secs(10)).success());
        let served = std::fs::read_to_string(dir.path().join("echo.out")).unwrap();
        assert!(
            served.contains("echo: answered 1000 messages on 1 channel(s)"),
            "{served}"
        );
    });
}

#[test]
fn two_vms_at_once_on_two_regions() {
    timed("two_vms_at_once_on_two_regions", || {
        let dir = tempfile::tempdir().unwrap();
        let a = ShmFile::new("vm-a");
        let b = ShmFile::new("vm-b");
        create(&a, "16M");
        create(&b, "16M");
        let mut server = echo(&[a.path(), b.path()], &["--count", "2000"], dir.path());
        let vm_a = Vm::start(dir.path(), "a", Some(a.path()), &[], PING);
        let vm_b = Vm::start(dir.path(), "b", Some(b.path()), &[], PING);
        for vm in [vm_a.finish(), vm_b.finish()] {
            vm.assert_code(0);
            vm.assert_console("ping: 1000 round trips");
            vm.assert_console("ping OK");
        }
        assert!(server.wait(Duration::from_secs(10)).success());
        let served = std::fs::read_to_string(dir.path().join("echo.out")).unwrap();
        assert!(served.contains("(per region: [1000, 1000])"), "{served}");
    });
}

#[test]
fn probe_fails_without_a_device() {
    timed("probe_fails_without_a_device", || {
        let dir = tempfile::tempdir().unwrap();
        let vm = Vm::start(dir.path(), "none", None, &[], "ivshmem-setup probe").finish();
        vm.assert_code(1);
        vm.assert_console("no ivshmem device (PCI 1af4:1110) in /sys/bus/pci/devices");
    });
}

#[test]
fn probe_rejects_a_region_with_a_wrong_header() {
    timed("probe_rejects_a_region_with_a_wrong_header", || {
        let dir = tempfile::tempdir().unwrap();
        let shm = ShmFile::new("zeros");
        // A file of the right size that was never formatted.
        std::fs::File::create(shm.path())
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        let vm = Vm::start(
            dir.path(),
            "zeros",
            Some(shm.path()),
            &[],
            "ivshmem-setup probe",
        )
        .finish();
        vm.assert_code(1);
        vm.assert_console("BAR2 holds no valid region");
        vm.assert_console("not a region");
    });
}

#[test]
fn probe_rejects_a_bar_smaller_than_the_region() {
    timed("probe_rejects_a_bar_smaller_than_the_region", || {
        let dir = tempfile::tempdir().unwrap();
        let shm = ShmFile::new("small-bar");
        create(&shm, "16M");
        // QEMU maps only the first 8 MiB of the 16 MiB region.
        let vm = Vm::start(
            dir.path(),
            "small",
            Some(shm.path()),
            &["--bar-size", "8388608"],
            "ivshmem-setup probe",
        )
        .finish();
        vm.assert_code(1);
        vm.assert_console("BAR2 is 8 MiB (8388608 bytes) but the region's layout needs");
    });
}
