//! End-to-end OpenCL in real VMs: QEMU (TCG) boots a busybox initramfs that
//! holds the host's unmodified `clinfo`, a small OpenCL sample and the guest
//! library installed as `libOpenCL.so.1` (no ICD loader, no PoCL in the
//! image). The library finds its region by probing the ivshmem PCI device
//! (`AVA_REGION` is unset in the guest) and remotes every call to an
//! `ava-worker` on the host, which runs it on the host's OpenCL.
//!
//! - `clinfo_in_vm_equals_native`: `clinfo` and `clinfo -l` in the VM print
//!   exactly what they print natively (up to the ICD loader section).
//! - `clinfo_in_vm_through_the_icd_loader_equals_native`: a second image
//!   whose OpenCL library is the host's ICD loader (ocl-icd); in the VM,
//!   `ivshmem-setup install-icd` installs the guest library as a driver,
//!   and `clinfo` prints exactly what it prints on the host, the ICD
//!   loader section included.
//! - `sample_in_vm_equals_native`: `samples/opencl/vm_vecadd.c`,
//!   `vecadd.c` and `svm.c` (shared virtual memory: the guest maps its
//!   BAR's heap where the worker sees it), compiled on the host against
//!   `-lOpenCL`, print the same in the VM as natively, and their channels are released
//!   when they exit. Their buffers lived in the region's heap (read and
//!   written in place through the BAR) and were freed.
//! - `two_vms_share_one_worker_on_two_regions`: two VMs at once, each on its
//!   own region, one worker serving both; each QEMU maps its own region and
//!   no other.
//! - `second_worker_is_refused_on_a_served_region`: while a VM runs on a
//!   region, a second `ava-worker` on it exits with an error naming the
//!   region and the live worker; `inspect` shows the one worker.
//!
//! Needs `ava-worker` and `libava_opencl.so` built in the same target
//! directory (`cargo build -p ava-worker -p ava-guestlib`), the host's
//! OpenCL (`pocl-opencl-icd ocl-icd-libopencl1 ocl-icd-opencl-dev clinfo`),
//! a C compiler, and what `tests/vm.rs` needs (QEMU, busybox, cpio and a
//! kernel, fetched into `target/tmp/vmtest`; `AVA_VM_KERNEL` picks another).
//! Every VM, worker and region is removed when a test ends, failed or not.
//! Run them with their timings shown:
//!
//! ```text
//! cargo build -p ava-worker -p ava-guestlib
//! cargo test -p ivshmem-setup --test vm_opencl -- --nocapture
//! ```

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{ChildGuard, ShmFile, script, serial, stdout_ok, vmtest_dir};
use nix::sys::signal::Signal;

/// Size of each VM's region (a power of two: it is also the BAR size).
const REGION_SIZE: &str = "64M";
/// Elements per buffer of the sample (1 MiB of floats per buffer).
const SAMPLE_N: &str = "262144";
/// Seconds a VM may run before run-vm.sh kills it.
const VM_TIMEOUT_S: u64 = 300;

fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("vmtest-opencl")
}

/// `target/<profile>`, found from this test binary (`target/<profile>/deps/..`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_owned()
}

/// A binary or library built next to this test's target directory.
fn built(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p ava-worker -p ava-guestlib` before these tests",
        p.display()
    );
    p
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A host command run to completion (at most `limit`), with its output.
struct HostRun {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn host_run(mut cmd: Command, tag: &str, dir: &Path, limit: Duration) -> HostRun {
    // Natively: the host's ICD loader, never the guest library.
    cmd.env_remove("LD_PRELOAD").env_remove("AVA_REGION");
    let (out, err) = (
        dir.join(format!("{tag}.out")),
        dir.join(format!("{tag}.err")),
    );
    let mut child = ChildGuard::spawn(cmd, tag, &out, &err);
    let status = child.wait(limit);
    HostRun {
        status,
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    }
}

/// What every test VM boots, and the samples' native output.
struct Kit {
    kernel: PathBuf,
    initrd: PathBuf,
    /// `vm_vecadd SAMPLE_N` natively.
    native_sample: String,
    /// `vecadd` natively.
    native_vecadd: String,
    /// `svm` (shared virtual memory) natively.
    native_svm: String,
}

/// Which ivshmem device a VM gets.
#[derive(Clone, Copy)]
enum Device<'a> {
    /// `ivshmem-plain` backed by the region file: the worker polls.
    Plain(&'a Path),
    /// `ivshmem-doorbell` whose server is the worker serving the region
    /// (its socket, the region's path + `.sock`): the guest rings.
    Doorbell(&'a Path),
}

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/opencl")
}

/// Compiles `samples/opencl/NAME.c` (which must exist) into `work/NAME`
/// against the host's `libOpenCL.so.1` and runs it natively with `args`;
/// returns the binary and its stdout (it must succeed).
fn compile_and_run(work: &Path, name: &str, args: &[&str]) -> (PathBuf, String) {
    let src = samples_dir().join(format!("{name}.c"));
    assert!(
        src.is_file(),
        "the sample {} is missing from the tree",
        src.display()
    );
    let bin = work.join(name);
    let cc = Command::new("cc")
        .args([
            "-O2",
            "-std=c11",
            "-Wall",
            "-Werror=implicit-function-declaration",
            "-o",
        ])
        .arg(&bin)
        .arg(&src)
        .arg("-lOpenCL")
        .output()
        .expect("run cc");
    assert!(
        cc.status.success(),
        "compiling {} failed (the OpenCL headers and libOpenCL.so come with ocl-icd-opencl-dev):\n{}",
        src.display(),
        String::from_utf8_lossy(&cc.stderr)
    );
    let mut cmd = Command::new(&bin);
    cmd.args(args);
    let native = host_run(
        cmd,
        &format!("native-{name}"),
        work,
        Duration::from_secs(120),
    );
    assert!(
        native.status.success(),
        "{name} fails natively ({}):\n{}{}",
        native.status,
        native.stdout,
        native.stderr
    );
    (bin, native.stdout)
}

/// Shell helpers put in the image (short command lines: the kernel's is
/// limited to 2 KiB).
///
/// `ava-check-image` fails unless the image is as intended: the guest
/// library is the only OpenCL library, there is no ICD loader configuration
/// and no PoCL, and no region is named in the environment.
const CHECK_IMAGE: &str = r#"#!/bin/sh
if [ -n "${AVA_REGION+set}${LD_PRELOAD+set}" ]; then echo "image: AVA_REGION or LD_PRELOAD is set"; exit 93; fi
if [ -e /etc/OpenCL ]; then echo "image: /etc/OpenCL exists"; exit 90; fi
extra=$(find / -xdev \( -name 'libpocl*' -o -name '*.icd' -o -name 'libOpenCL*' \) | grep -v -x -e /lib/x86_64-linux-gnu/libOpenCL.so.1 -e /usr/lib/x86_64-linux-gnu/libOpenCL.so.1)
if [ -n "$extra" ]; then echo "image: unexpected OpenCL files: $extra"; exit 91; fi
if ! cmp -s /lib/x86_64-linux-gnu/libOpenCL.so.1 /usr/lib/x86_64-linux-gnu/libOpenCL.so.1; then echo "image: two different libOpenCL.so.1"; exit 92; fi
echo "image: guest library only, region from the PCI probe"
"#;

/// `ava-capture NAME COMMAND...` runs COMMAND with stdout and stderr in
/// files, then prints them between whole-line markers, with the guest's
/// uptime before and after, and exits with COMMAND's status.
const CAPTURE: &str = r#"#!/bin/sh
name=$1; shift
t0=$(cut -d' ' -f1 /proc/uptime)
"$@" >/tmp/"$name".out 2>/tmp/"$name".err
rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
echo "AVA-BEGIN $name"
cat /tmp/"$name".out
echo "AVA-END $name rc=$rc"
echo "AVA-TIME $name $t0 $t1"
echo "AVA-BEGIN $name.stderr"
cat /tmp/"$name".err
echo "AVA-END $name.stderr rc=0"
exit $rc
"#;

/// Installs the tools, fetches the kernel, compiles the sample, runs it
/// natively and builds the initramfs, once.
fn kit() -> &'static Kit {
    static KIT: OnceLock<Kit> = OnceLock::new();
    KIT.get_or_init(|| {
        let t = Instant::now();
        let worker = built("ava-worker");
        let guestlib = built("libava_opencl.so");
        script("install-deps.sh", &[]);
        for tool in ["qemu-system-x86_64", "busybox", "cpio"] {
            assert!(
                have(tool),
                "{tool} is missing and could not be installed: the VM tests need qemu-system-x86, busybox-static and cpio (run vmtest/install-deps.sh as root)"
            );
        }
        for tool in ["clinfo", "cc"] {
            assert!(
                have(tool),
                "{tool} is missing: these tests need the host's OpenCL and a C compiler (apt-get install pocl-opencl-icd ocl-icd-libopencl1 ocl-icd-opencl-dev clinfo gcc)"
            );
        }
        let kernel = match std::env::var_os("AVA_VM_KERNEL") {
            Some(k) => PathBuf::from(k),
            None => PathBuf::from(script(
                "fetch-kernel.sh",
                &[Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join("vmtest/kernel")
                    .to_str()
                    .unwrap()],
            )),
        };
        let work = work_dir();
        std::fs::create_dir_all(&work).unwrap();

        // The samples, compiled on the host against libOpenCL.so.1 and run
        // natively, `vecadd.c` with 1M floats.
        let (sample, native_sample) = compile_and_run(&work, "vm_vecadd", &[SAMPLE_N]);
        assert!(native_sample.contains("vecadd OK"), "{native_sample}");
        let (idle_wake, _) = compile_and_run(&work, "idle_wake", &["1", "10"]);
        let (vecadd, native_vecadd) = compile_and_run(&work, "vecadd", &[]);
        let (svm, native_svm) = compile_and_run(&work, "svm", &[]);
        assert!(native_svm.contains("sum 5050"), "{native_svm}");
        assert!(
            native_vecadd.contains("mismatches: 0"),
            "{native_vecadd}"
        );

        // The guest library, stripped when possible (a smaller image boots
        // faster), installed under every name the dynamic linker may try.
        let lib = work.join("libOpenCL.so.1");
        let stripped = have("strip")
            && Command::new("strip")
                .arg("-o")
                .arg(&lib)
                .arg(&guestlib)
                .status()
                .is_ok_and(|s| s.success());
        if !stripped {
            std::fs::copy(&guestlib, &lib).expect("copy the guest library");
        }
        let check = work.join("ava-check-image");
        let capture = work.join("ava-capture");
        for (path, text) in [(&check, CHECK_IMAGE), (&capture, CAPTURE)] {
            std::fs::write(path, text).unwrap();
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let lib = lib.to_str().unwrap();
        let files = [
            // The libraries first: build-initramfs.sh then skips the host's
            // ICD loader that `ldd clinfo` names at the same path.
            format!("{lib}=/lib/x86_64-linux-gnu/libOpenCL.so.1"),
            format!("{lib}=/usr/lib/x86_64-linux-gnu/libOpenCL.so.1"),
            "/usr/bin/clinfo=/usr/bin/clinfo".to_owned(),
            format!("{}=/usr/bin/vm_vecadd", sample.display()),
            format!("{}=/usr/bin/vecadd", vecadd.display()),
            format!("{}=/usr/bin/idle_wake", idle_wake.display()),
            format!("{}=/usr/bin/svm", svm.display()),
            format!("{}=/bin/ava-check-image", check.display()),
            format!("{}=/bin/ava-capture", capture.display()),
        ];
        let initrd = work.join("initrd.cpio.gz");
        let mut args = vec![initrd.to_str().unwrap()];
        args.extend(files.iter().map(String::as_str));
        script("build-initramfs.sh", &args);
        let size = std::fs::metadata(&initrd).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "vm kit ready in {:.1}s: {}, initramfs {:.1} MiB, worker {}",
            t.elapsed().as_secs_f64(),
            kernel.display(),
            size as f64 / (1 << 20) as f64,
            worker.display()
        );
        Kit {
            kernel,
            initrd,
            native_sample,
            native_vecadd,
            native_svm,
        }
    })
}

/// `ava-check-icd-image` fails unless the ICD image is as intended: the
/// system's ICD loader (ocl-icd, the host's) is the OpenCL library, with
/// no vendors directory yet and no PoCL.
const CHECK_ICD_IMAGE: &str = r#"#!/bin/sh
if [ -n "${AVA_REGION+set}${LD_PRELOAD+set}${OCL_ICD_VENDORS+set}" ]; then echo "image: AVA_REGION, LD_PRELOAD or OCL_ICD_VENDORS is set"; exit 93; fi
if [ -e /etc/OpenCL ]; then echo "image: /etc/OpenCL exists before install-icd"; exit 90; fi
extra=$(find / -xdev \( -name 'libpocl*' -o -name '*.icd' \))
if [ -n "$extra" ]; then echo "image: unexpected OpenCL files: $extra"; exit 91; fi
lib=$(find / -xdev -name libOpenCL.so.1 | head -n 1)
if [ -z "$lib" ] || ! grep -q clGetICDLoaderInfoOCLICD "$lib"; then echo "image: libOpenCL.so.1 ($lib) is not ocl-icd"; exit 92; fi
echo "image: the system's ICD loader, the guest library as a driver"
"#;

/// A second image for the installable-client-driver mode: the host's ICD
/// loader (ocl-icd, which `ldd clinfo` names) and `clinfo`, the guest
/// library at `/usr/local/lib/libava_opencl.so` and `ivshmem-setup` to
/// install it (`install-icd`, run in the VM).
fn icd_initrd() -> &'static Path {
    static INITRD: OnceLock<PathBuf> = OnceLock::new();
    INITRD.get_or_init(|| {
        let _ = kit();
        let work = work_dir();
        let check = work.join("ava-check-icd-image");
        std::fs::write(&check, CHECK_ICD_IMAGE).unwrap();
        std::fs::set_permissions(&check, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let files = [
            format!(
                "{}=/usr/local/lib/libava_opencl.so",
                work.join("libOpenCL.so.1").display()
            ),
            "/usr/bin/clinfo=/usr/bin/clinfo".to_owned(),
            format!(
                "{}=/usr/bin/ivshmem-setup",
                env!("CARGO_BIN_EXE_ivshmem-setup")
            ),
            format!("{}=/bin/ava-check-icd-image", check.display()),
            format!("{}=/bin/ava-capture", work.join("ava-capture").display()),
        ];
        let initrd = work.join("initrd-icd.cpio.gz");
        let mut args = vec![initrd.to_str().unwrap()];
        args.extend(files.iter().map(String::as_str));
        script("build-initramfs.sh", &args);
        initrd
    })
}

fn timed<T>(name: &str, f: impl FnOnce() -> T) -> T {
    kit();
    let _one_at_a_time = serial();
    let t = Instant::now();
    let r = f();
    eprintln!("vm test {name}: {:.1}s", t.elapsed().as_secs_f64());
    r
}

/// Removes ANSI colour sequences (log lines).
fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn create(shm: &ShmFile) {
    stdout_ok(&["create", shm.arg(), "--size", REGION_SIZE]);
}

/// The `/dev/shm` files that process `pid` maps.
fn shm_maps(pid: u32) -> BTreeSet<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.find(" /dev/shm/").map(|i| l[i + 1..].to_owned()))
        .map(|p| p.trim_end_matches(" (deleted)").to_owned())
        .collect()
}

/// A running `ava-worker` on the given regions; stopped when dropped.
struct Worker {
    guard: ChildGuard,
    pid: u32,
    log: PathBuf,
}

impl Worker {
    fn start(regions: &[&Path], dir: &Path, tag: &str) -> Worker {
        let mut cmd = Command::new(built("ava-worker"));
        for r in regions {
            cmd.arg("--region").arg(r);
        }
        cmd.env("AVA_LOG", "info,ava_worker::guards=debug")
            .env("NO_COLOR", "1");
        let log = dir.join(format!("{tag}.log"));
        let mut guard = ChildGuard::spawn(cmd, tag, &dir.join(format!("{tag}.out")), &log);
        let pid = guard.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = regions.iter().all(|r| {
                transport::Region::open(r)
                    .is_ok_and(|r| r.worker_pid() == pid && r.worker_heartbeat() > 0)
            });
            if ready {
                break;
            }
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(guard.running(), "ava-worker exited at start:\n{log}");
            assert!(
                Instant::now() < deadline,
                "ava-worker serves no region after 30s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Worker { guard, pid, log }
    }

    fn log(&self) -> String {
        plain(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Asserts that a guest attached on `region`.
    fn assert_served(&self, region: &Path) {
        let log = self.log();
        let line = format!("guest attached region={}", region.display());
        assert!(log.contains(&line), "the worker log lacks {line:?}:\n{log}");
    }

    /// Waits until the worker logs that a guest released its channel on
    /// exit (rather than being reclaimed when its heartbeat stopped), then
    /// checks that every channel of `region` is free again.
    fn assert_released(&self, region: &ShmFile) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains("guest released its channel") {
            assert!(
                Instant::now() < deadline,
                "no guest released its channel on exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = stdout_ok(&["inspect", region.arg()]);
        let busy: Vec<_> = text
            .lines()
            .skip_while(|l| !l.starts_with("channel "))
            .skip(1)
            .filter(|l| l.split_whitespace().nth(1) != Some("free"))
            .collect();
        assert!(
            busy.is_empty(),
            "channels still held after the VM ended:\n{text}"
        );
    }

    /// Stops the worker (SIGTERM) and checks that it exits cleanly.
    fn stop(mut self) {
        self.guard.signal(Signal::SIGTERM);
        let status = self.guard.wait(Duration::from_secs(15));
        assert!(
            status.success(),
            "ava-worker exited with {status}:\n{}",
            self.log()
        );
    }
}

/// A booting VM (`vmtest/run-vm.sh`), killed with its QEMU if dropped early.
struct Vm {
    guard: ChildGuard,
    tag: String,
    log: PathBuf,
    stderr: PathBuf,
    started: Instant,
}

/// How a VM ended.
struct VmRun {
    tag: String,
    /// Exit status of run-vm.sh: the guest command's rc, 124 on timeout.
    code: Option<i32>,
    /// The serial console, `\r` removed.
    console: String,
    /// What run-vm.sh said.
    stderr: String,
    /// Wall time from start to power-off.
    secs: f64,
}

impl Vm {
    fn start(dir: &Path, tag: &str, region: &Path, cmd: &str) -> Vm {
        Vm::start_image(dir, tag, Device::Plain(region), cmd, &kit().initrd)
    }

    /// As [`Vm::start`], with `device`, booting `initrd`.
    fn start_image(dir: &Path, tag: &str, device: Device<'_>, cmd: &str, initrd: &Path) -> Vm {
        let kit = kit();
        let log = dir.join(format!("{tag}.console"));
        let stderr = dir.join(format!("{tag}.stderr"));
        let mut c = Command::new("bash");
        c.arg(vmtest_dir().join("run-vm.sh"))
            .arg("--kernel")
            .arg(&kit.kernel)
            .arg("--initrd")
            .arg(initrd)
            .arg("--timeout")
            .arg(VM_TIMEOUT_S.to_string())
            .arg("--log")
            .arg(&log)
            // Kernel messages would interleave with the captured output.
            .args(["--append", "loglevel=0"])
            .args(["--cmd", cmd]);
        match device {
            Device::Plain(region) => c.arg("--region").arg(region),
            Device::Doorbell(region) => c
                .arg("--doorbell")
                .arg(format!("{}.sock", region.display())),
        };
        let guard = ChildGuard::spawn(
            c,
            &format!("VM {tag}"),
            &dir.join(format!("{tag}.stdout")),
            &stderr,
        );
        Vm {
            guard,
            tag: tag.to_owned(),
            log,
            stderr,
            started: Instant::now(),
        }
    }

    /// The QEMU process of this VM (a child of run-vm.sh), once started.
    fn qemu_pid(&self) -> Option<u32> {
        let parent = self.guard.id();
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, rest) = stat.rsplit_once(") ")?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent && head.contains("(qemu-system")).then_some(pid)
        })
    }

    /// The `/dev/shm` files this VM's QEMU maps, as soon as it maps any.
    fn mapped_regions(&mut self) -> BTreeSet<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(pid) = self.qemu_pid() {
                let maps = shm_maps(pid);
                if !maps.is_empty() {
                    return maps;
                }
            }
            assert!(
                self.guard.running(),
                "VM {} ended before its QEMU's mappings could be read",
                self.tag
            );
            assert!(
                Instant::now() < deadline,
                "VM {}: no QEMU mapping a region after 30s",
                self.tag
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(mut self) -> VmRun {
        let status = self.guard.wait(Duration::from_secs(VM_TIMEOUT_S + 30));
        let run = VmRun {
            tag: self.tag.clone(),
            code: status.code(),
            console: std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .replace('\r', ""),
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
            secs: self.started.elapsed().as_secs_f64(),
        };
        eprintln!("  VM {}: {:.1}s from start to power-off", run.tag, run.secs);
        run
    }
}

impl VmRun {
    fn assert_ok(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "VM {}: exit status; run-vm.sh said:\n{}\nconsole:\n{}",
            self.tag,
            self.stderr,
            self.console
        );
    }

    /// The text a guest command printed (`ava-capture NAME ...`) and its
    /// exit status.
    fn section(&self, name: &str) -> (String, i32) {
        let begin = format!("AVA-BEGIN {name}");
        let end = format!("AVA-END {name} rc=");
        let mut lines = self.console.lines();
        if lines.by_ref().any(|l| l == begin) {
            let mut text = String::new();
            for l in lines {
                if let Some(rc) = l.strip_prefix(&end) {
                    return (text, rc.trim().parse().unwrap_or(-1));
                }
                text.push_str(l);
                text.push('\n');
            }
        }
        panic!(
            "VM {}: no complete {name:?} output on the console:\n{}",
            self.tag, self.console
        );
    }

    /// What a guest command printed, checked to have succeeded; its stderr
    /// and its time in the guest are shown.
    fn output(&self, name: &str) -> String {
        let (out, rc) = self.section(name);
        let (err, _) = self.section(&format!("{name}.stderr"));
        let time = self
            .console
            .lines()
            .find_map(|l| l.strip_prefix(&format!("AVA-TIME {name} ")))
            .and_then(|t| {
                let (a, b) = t.split_once(' ')?;
                Some(b.parse::<f64>().ok()? - a.parse::<f64>().ok()?)
            });
        if let Some(t) = time {
            eprintln!("  VM {}: `{name}` took {t:.2}s in the guest", self.tag);
        }
        if !err.trim().is_empty() {
            eprintln!("  VM {}: `{name}` stderr:\n{}", self.tag, indent(&err));
        }
        assert_eq!(
            rc, 0,
            "VM {}: `{name}` exited with {rc}\nstdout:\n{out}\nstderr:\n{err}",
            self.tag
        );
        out
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// Panics at the first line where the guest's output differs from the
/// host's.
fn assert_same(what: &str, native: &str, guest: &str) {
    if native == guest {
        return;
    }
    let (n, g): (Vec<_>, Vec<_>) = (native.lines().collect(), guest.lines().collect());
    for i in 0..n.len().max(g.len()) {
        let (a, b) = (n.get(i), g.get(i));
        if a != b {
            panic!(
                "{what}: line {} differs ({} lines natively, {} in the VM)\nnative: {a:?}\nguest:  {b:?}\nguest output:\n{guest}",
                i + 1,
                n.len(),
                g.len()
            );
        }
    }
    panic!("{what}: outputs differ only in line endings\nnative: {native:?}\nguest: {guest:?}");
}

/// clinfo's output up to its ICD loader section (the guest library is not
/// an ICD loader, so clinfo can query no loader properties through it).
fn platform_part(out: &str) -> String {
    out.split("\nICD loader properties")
        .next()
        .unwrap_or(out)
        .trim_end()
        .to_owned()
}

/// The guest command that runs the sample.
fn sample_cmd() -> String {
    format!("ava-check-image && ava-capture sample vm_vecadd {SAMPLE_N}")
}

#[test]
fn clinfo_in_vm_equals_native() {
    timed("clinfo_in_vm_equals_native", || {
        let dir = tempfile::tempdir().unwrap();
        let clinfo = |args: &[&str], tag: &str| {
            let mut c = Command::new("clinfo");
            c.args(args);
            let r = host_run(c, tag, dir.path(), Duration::from_secs(60));
            assert!(
                r.status.success(),
                "native clinfo {args:?} failed: {}",
                r.stderr
            );
            r.stdout
        };
        let native = clinfo(&[], "native-clinfo");
        let native_list = clinfo(&["-l"], "native-clinfo-l");
        assert!(
            native.contains("Number of platforms") && native.contains("Device Name"),
            "native clinfo lists no device:\n{native}"
        );

        let shm = ShmFile::new("ocl-clinfo");
        create(&shm);
        let worker = Worker::start(&[shm.path()], dir.path(), "worker");
        let vm = Vm::start(
            dir.path(),
            "clinfo",
            shm.path(),
            "ava-check-image && ava-capture clinfo clinfo && ava-capture clinfo-l clinfo -l",
        )
        .finish();
        vm.assert_ok();
        let guest = vm.output("clinfo");
        let guest_list = vm.output("clinfo-l");
        assert_same("clinfo", &platform_part(&native), &platform_part(&guest));
        assert_same("clinfo -l", &native_list, &guest_list);
        worker.assert_served(shm.path());
        worker.stop();
    });
}

/// CPU time (clock ticks) of process `pid` and of every process under it
/// (a worker's executors).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = |p: u32| std::fs::read_to_string(format!("/proc/{p}/stat")).ok();
    let fields = |s: &str| -> Vec<String> {
        s.rsplit_once(") ")
            .map(|(_, r)| r.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for &p in &pids {
            let ppid = stat(p).and_then(|s| fields(&s).get(1)?.parse::<u32>().ok());
            if ppid == Some(parent) && !tree.contains(&p) {
                tree.push(p);
            }
        }
        i += 1;
    }
    tree.iter()
        .filter_map(|&p| {
            let f = fields(&stat(p)?);
            // utime and stime: fields 14 and 15 of stat, 12 and 13 after
            // the command.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// While `vm` runs `idle_wake` with its markers on the console: the
/// worker's CPU, in percent of one core, between "AVA-IDLE begin" and
/// "AVA-IDLE end", and the guest's own figures.
fn idle_cpu(mut vm: Vm, worker: &Worker) -> (f64, VmRun) {
    let mut wait_for = |text: &str| {
        let deadline = Instant::now() + Duration::from_secs(VM_TIMEOUT_S);
        loop {
            let console = std::fs::read_to_string(&vm.log).unwrap_or_default();
            if console.contains(text) {
                return (Instant::now(), cpu_ticks(worker.pid));
            }
            assert!(
                Instant::now() < deadline && vm.guard.running(),
                "VM {}: no {text:?} on the console:\n{console}",
                vm.tag
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (t0, c0) = wait_for("AVA-IDLE begin");
    let (t1, c1) = wait_for("AVA-IDLE end");
    // /proc counts in USER_HZ, 100 on Linux whatever the kernel's HZ.
    let ticks_per_s = 100.0;
    let cpu = (c1 - c0) as f64 / ticks_per_s / (t1 - t0).as_secs_f64() * 100.0;
    (cpu, vm.finish())
}

/// A VM whose `ivshmem-doorbell` device is served by the worker (QEMU gets
/// the region and the worker's eventfd from the worker's socket): unmodified
/// `clinfo` prints what it prints natively, and while the VM's guest holds
/// a context and sleeps, the worker sleeps too, woken by the guest's
/// doorbell. The same guest in a VM with `ivshmem-plain` (polled) is
/// measured beside it; the worker's idle CPU and the guest's first calls
/// after a second of idleness are printed for both.
#[test]
fn a_vm_with_ivshmem_doorbell_rings_the_worker() {
    timed("a_vm_with_ivshmem_doorbell_rings_the_worker", || {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Command::new("clinfo");
        let native = host_run(
            {
                c.arg("-l");
                c
            },
            "native-clinfo-l",
            dir.path(),
            Duration::from_secs(60),
        );
        assert!(native.status.success(), "{}", native.stderr);
        let shm = ShmFile::new("ocl-doorbell");
        create(&shm);
        let worker = Worker::start(&[shm.path()], dir.path(), "worker");
        let idle = "AVA_MARK_FILE=/dev/console ava-capture idle idle_wake 6 1000";
        let vm = Vm::start_image(
            dir.path(),
            "doorbell",
            Device::Doorbell(shm.path()),
            &format!("ava-check-image && ava-capture clinfo-l clinfo -l && {idle}"),
            &kit().initrd,
        );
        let (rung, vm) = idle_cpu(vm, &worker);
        vm.assert_ok();
        assert_same("clinfo -l", &native.stdout, &vm.output("clinfo-l"));
        let rung_calls = vm.output("idle");
        let log = worker.log();
        assert!(
            log.contains("a VM connected for doorbells"),
            "QEMU did not connect to the worker's ivshmem server:\n{log}"
        );

        let vm = Vm::start_image(
            dir.path(),
            "plain",
            Device::Plain(shm.path()),
            &format!("ava-check-image && {idle}"),
            &kit().initrd,
        );
        let (polled, vm) = idle_cpu(vm, &worker);
        vm.assert_ok();
        let polled_calls = vm.output("idle");
        eprintln!(
            "  worker CPU while the VM's guest idles: {rung:.2}% of a core with the doorbell, \
             {polled:.2}% polling (ivshmem-plain)\n  doorbell: {}  plain:    {}",
            rung_calls.trim(),
            polled_calls.trim()
        );
        assert!(
            rung < polled,
            "the worker spent {rung:.2}% of a core on an idle guest that rings, \
             no less than on one it polls ({polled:.2}%)"
        );
        worker.stop();
    });
}

/// In a VM whose OpenCL library is the system's ICD loader (ocl-icd),
/// `ivshmem-setup install-icd` installs the guest library as a driver;
/// unmodified `clinfo` then prints exactly what it prints on the host,
/// ICD loader section included.
#[test]
fn clinfo_in_vm_through_the_icd_loader_equals_native() {
    timed("clinfo_in_vm_through_the_icd_loader_equals_native", || {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str], tag: &str| {
            let mut c = Command::new("clinfo");
            c.args(args);
            let r = host_run(c, tag, dir.path(), Duration::from_secs(60));
            assert!(
                r.status.success(),
                "native clinfo {args:?} failed: {}",
                r.stderr
            );
            r.stdout
        };
        let native = run(&[], "native-clinfo");
        let native_list = run(&["-l"], "native-clinfo-l");
        assert!(native.contains("ICD loader properties"), "{native}");
        let initrd = icd_initrd();
        let shm = ShmFile::new("ocl-icd");
        create(&shm);
        let worker = Worker::start(&[shm.path()], dir.path(), "worker");
        let vm = Vm::start_image(
            dir.path(),
            "clinfo-icd",
            Device::Plain(shm.path()),
            "ava-check-icd-image && ivshmem-setup install-icd --lib /usr/local/lib/libava_opencl.so && ava-capture clinfo clinfo && ava-capture clinfo-l clinfo -l",
            initrd,
        )
        .finish();
        vm.assert_ok();
        assert_same("clinfo", &native, &vm.output("clinfo"));
        assert_same("clinfo -l", &native_list, &vm.output("clinfo-l"));
        worker.assert_served(shm.path());
        worker.stop();
    });
}

#[test]
fn sample_in_vm_equals_native() {
    timed("sample_in_vm_equals_native", || {
        let dir = tempfile::tempdir().unwrap();
        let shm = ShmFile::new("ocl-sample");
        create(&shm);
        let worker = Worker::start(&[shm.path()], dir.path(), "worker");
        let cmd = format!(
            "{} && ava-capture vecadd vecadd && ava-capture svm svm",
            sample_cmd()
        );
        let vm = Vm::start(dir.path(), "sample", shm.path(), &cmd).finish();
        vm.assert_ok();
        let guest = vm.output("sample");
        assert_same("vm_vecadd", &kit().native_sample, &guest);
        assert_same("vecadd", &kit().native_vecadd, &vm.output("vecadd"));
        // Shared virtual memory: the guest maps its BAR's heap at the
        // address where the worker sees it, and kernels follow the
        // program's pointers.
        assert_same("svm", &kit().native_svm, &vm.output("svm"));
        worker.assert_served(shm.path());
        worker.assert_released(&shm);
        // The region's heap (half of the BAR) held the sample's buffers,
        // which the guest library read and wrote in place through the BAR,
        // and it is empty again once the guest has gone.
        let log = worker.log();
        assert!(log.contains("buffer placed in the heap"), "{log}");
        assert!(
            log.lines()
                .any(|l| l.contains("buffer heap after the guest's cleanup")
                    && l.contains("in_use=0")),
            "{log}"
        );
        worker.stop();
    });
}

#[test]
fn two_vms_share_one_worker_on_two_regions() {
    timed("two_vms_share_one_worker_on_two_regions", || {
        let dir = tempfile::tempdir().unwrap();
        let a = ShmFile::new("ocl-vm-a");
        let b = ShmFile::new("ocl-vm-b");
        assert_ne!(a.path(), b.path());
        create(&a);
        create(&b);
        let worker = Worker::start(&[a.path(), b.path()], dir.path(), "worker");
        let mut vm_a = Vm::start(dir.path(), "a", a.path(), &sample_cmd());
        let mut vm_b = Vm::start(dir.path(), "b", b.path(), &sample_cmd());

        // Each VM maps its own region and nothing else of /dev/shm; the
        // worker maps both.
        let (maps_a, maps_b) = (vm_a.mapped_regions(), vm_b.mapped_regions());
        let only = |p: &Path| BTreeSet::from([p.to_str().unwrap().to_owned()]);
        assert_eq!(maps_a, only(a.path()), "VM a's QEMU maps");
        assert_eq!(maps_b, only(b.path()), "VM b's QEMU maps");
        let worker_maps = shm_maps(worker.pid);
        assert!(
            worker_maps.contains(a.arg()) && worker_maps.contains(b.arg()),
            "the worker maps {worker_maps:?}"
        );
        // One worker, the same on both regions.
        for r in [&a, &b] {
            let text = stdout_ok(&["inspect", r.arg()]);
            let workers: Vec<_> = text.lines().filter(|l| l.starts_with("worker:")).collect();
            assert_eq!(workers.len(), 1, "{text}");
            assert!(
                workers[0].contains(&format!("pid {} (alive)", worker.pid)),
                "{}: {text}",
                r.arg()
            );
        }

        for vm in [vm_a.finish(), vm_b.finish()] {
            vm.assert_ok();
            let guest = vm.output("sample");
            assert_same(
                &format!("vm_vecadd in VM {}", vm.tag),
                &kit().native_sample,
                &guest,
            );
        }
        worker.assert_served(a.path());
        worker.assert_served(b.path());
        worker.stop();
    });
}

#[test]
fn second_worker_is_refused_on_a_served_region() {
    timed("second_worker_is_refused_on_a_served_region", || {
        let dir = tempfile::tempdir().unwrap();
        let shm = ShmFile::new("ocl-busy");
        create(&shm);
        let mut worker = Worker::start(&[shm.path()], dir.path(), "worker");
        let vm = Vm::start(dir.path(), "busy", shm.path(), &sample_cmd());

        // A second worker while the first serves the region and the VM
        // runs: refused, naming the region and the live worker.
        let mut cmd = Command::new(built("ava-worker"));
        cmd.arg("--region")
            .arg(shm.path())
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "0");
        let second = host_run(cmd, "second-worker", dir.path(), Duration::from_secs(60));
        let msg = plain(&second.stderr);
        assert!(
            !second.status.success(),
            "a second ava-worker served {} ({})",
            shm.arg(),
            second.status
        );
        assert!(
            msg.contains(shm.arg())
                && msg.contains(&format!("already served by worker pid {}", worker.pid)),
            "the refusal should name the region and worker pid {}:\n{msg}",
            worker.pid
        );
        eprintln!(
            "  second worker refused: {}",
            msg.lines()
                .find(|l| l.contains("Error"))
                .unwrap_or("")
                .trim()
        );
        // Nor may the region be removed under the worker.
        let removed = common::run(&["remove", shm.arg()]);
        assert!(!removed.status.success() && shm.path().exists());

        // Still exactly one worker on the region: the first.
        let text = stdout_ok(&["inspect", shm.arg()]);
        let workers: Vec<_> = text.lines().filter(|l| l.starts_with("worker:")).collect();
        assert_eq!(workers.len(), 1, "{text}");
        assert!(
            workers[0].contains(&format!("pid {} (alive)", worker.pid)),
            "{text}"
        );

        // The VM was not disturbed.
        let vm = vm.finish();
        vm.assert_ok();
        assert_same("vm_vecadd", &kit().native_sample, &vm.output("sample"));
        assert!(
            worker.guard.running(),
            "the first worker died:\n{}",
            worker.log()
        );
        worker.assert_served(shm.path());
        worker.stop();
    });
}
