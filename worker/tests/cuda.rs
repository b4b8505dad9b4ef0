//! CUDA remoted end to end: `libava_cuda.so` as the application's
//! `libcuda.so.1`, a real `ava-worker`, and the CUDA stand-in driver
//! (`libava_cuda_standin.so`, a test double that runs PTX on the CPU;
//! no GPU is on these machines) as the host's driver. Every client runs
//! twice — directly on the stand-in, and remoted — and must give the same
//! results and the same errors.

mod common;

use std::collections::HashMap;
use std::ffi::{CString, c_char, c_void};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{Stack, run_capture, target_dir, text};

/// The stand-in driver (a test double; see `cuda-standin/README.md`).
fn standin() -> PathBuf {
    let p = target_dir().join("libava_cuda_standin.so");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The CUDA guest library.
fn guestlib_cuda() -> PathBuf {
    let p = target_dir().join("libava_cuda.so");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace`",
        p.display()
    );
    p
}

/// A directory holding `libcuda.so.1` (and `libcuda.so`) linked to `lib`,
/// for `LD_LIBRARY_PATH`.
fn driver_dir(name: &str, lib: &Path) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ava-cuda-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("driver dir");
    // Tests run in parallel and share the directory: each link is made
    // under a name of its own and renamed into place, so that it is never
    // missing.
    for link in ["libcuda.so.1", "libcuda.so"] {
        let l = d.join(link);
        if std::fs::read_link(&l).is_ok_and(|t| t == lib) {
            continue;
        }
        let tmp = d.join(format!("{link}.{:?}", std::thread::current().id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(lib, &tmp).expect("symlink");
        std::fs::rename(&tmp, &l).expect("rename the link into place");
    }
    d
}

/// A worker serving OpenCL and CUDA, the latter on the stand-in.
fn stack(tag: &str) -> Stack {
    let lib = standin();
    Stack::launch(
        tag,
        &[
            "--arena-size",
            "8388608",
            "--backends",
            "opencl,cuda",
            "--cuda-lib",
            lib.to_str().expect("utf-8 path"),
        ],
        &[],
    )
}

/// `program` run directly on the stand-in.
fn direct(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env("LD_LIBRARY_PATH", driver_dir("direct", &standin()));
    c
}

/// `program` run through the guest library against `stack`.
fn remoted(stack: &Stack, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env("LD_LIBRARY_PATH", driver_dir("remoted", &guestlib_cuda()))
        .env("AVA_REGION", &stack.region);
    c
}

fn run(c: Command, what: &str, stack: Option<&Stack>) -> Output {
    let out = run_capture(c, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}\nworker log:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr),
        stack.map(Stack::log).unwrap_or_default()
    );
    out
}

// ------------------------------------------------------------------ the worker without a driver

#[test]
fn a_worker_without_a_cuda_driver_says_so_and_serves_opencl() {
    let mut s = Stack::launch(
        "nocuda",
        &[
            "--backends",
            "opencl,cuda",
            "--cuda-lib",
            "/nonexistent/libcuda.so.1",
        ],
        &[],
    );
    let log = s.log();
    assert!(
        log.contains(
            "CUDA backend unavailable: no CUDA driver: loading /nonexistent/libcuda.so.1 failed"
        ),
        "{log}"
    );
    assert!(log.contains("OpenCL backend loaded"), "{log}");
    assert!(s.alive(), "the worker serves OpenCL");
}

// ------------------------------------------------------------------ bad input: the driver's errors

/// The CUDA calls of the guest half, through `libcuda.so.1` as the
/// library path finds it (the stand-in, or the guest library).
struct Cu {
    _lib: libloading::Library,
    f: HashMap<&'static str, *const c_void>,
}

impl Cu {
    fn load() -> Cu {
        // SAFETY: loading the driver (or its remoted stand-in) runs its
        // initialisers, as any CUDA program does.
        let lib = unsafe { libloading::Library::new("libcuda.so.1") }.expect("libcuda.so.1");
        let mut f = HashMap::new();
        for name in [
            "cuInit",
            "cuDeviceGet",
            "cuDevicePrimaryCtxRetain",
            "cuCtxSetCurrent",
            "cuCtxSynchronize",
            "cuModuleLoadData",
            "cuModuleGetFunction",
            "cuMemAlloc_v2",
            "cuMemFree_v2",
            "cuMemcpyHtoD_v2",
            "cuMemcpyDtoH_v2",
            "cuMemcpyDtoD_v2",
            "cuMemsetD8_v2",
            "cuStreamCreate",
            "cuStreamDestroy_v2",
            "cuStreamQuery",
            "cuStreamSynchronize",
            "cuStreamAddCallback",
            "cuLaunchHostFunc",
            "cuLaunchKernel",
            "cuGetErrorName",
            "cuGetProcAddress_v2",
            "cuDeviceGetDefaultMemPool",
            "cuMemAllocFromPoolAsync",
            "cuMemAllocAsync",
            "cuMemFreeAsync",
        ] {
            // SAFETY: the symbol is looked up, not called.
            let s = unsafe { lib.get::<*const c_void>(format!("{name}\0").as_bytes()) }
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            f.insert(name, *s);
        }
        Cu { _lib: lib, f }
    }

    /// The function `name` as a `T` (a C function pointer type).
    fn get<T: Copy>(&self, name: &str) -> T {
        let p = self.f[name];
        assert_eq!(size_of::<T>(), size_of::<*const c_void>());
        // SAFETY: `T` is the function pointer type of `name`'s C prototype
        // (each call site names it).
        unsafe { std::mem::transmute_copy(&p) }
    }
}

type CuFn1<A> = unsafe extern "C" fn(A) -> i32;
type CuFn2<A, B> = unsafe extern "C" fn(A, B) -> i32;
type CuFn3<A, B, C> = unsafe extern "C" fn(A, B, C) -> i32;
type Launch = unsafe extern "C" fn(
    *mut c_void,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    *mut c_void,
    *mut *mut c_void,
    *mut *mut c_void,
) -> i32;
type ProcAddress = unsafe extern "C" fn(*const c_char, *mut *mut c_void, i32, u64, *mut i32) -> i32;

const PTX: &str = include_str!("../../samples/cuda/kernels.ptx");

/// The checks of the guest half: every bad input gets the driver's error,
/// in the order a program would meet them; prints one line per check.
fn bad_input_checks() {
    let cu = Cu::load();
    // SAFETY: every call passes arguments of the C prototype of the
    // function named, with outputs that are locals.
    unsafe {
        let r = cu.get::<CuFn1<u32>>("cuInit")(0);
        assert_eq!(r, 0, "cuInit");
        let mut dev = 0i32;
        let r = cu.get::<CuFn2<*mut i32, i32>>("cuDeviceGet")(&mut dev, 99);
        assert_eq!(
            r, 101,
            "cuDeviceGet of a device that does not exist: CUDA_ERROR_INVALID_DEVICE"
        );
        assert_eq!(
            cu.get::<CuFn2<*mut i32, i32>>("cuDeviceGet")(&mut dev, 0),
            0
        );
        let mut ctx: *mut c_void = std::ptr::null_mut();
        assert_eq!(
            cu.get::<CuFn2<*mut *mut c_void, i32>>("cuDevicePrimaryCtxRetain")(&mut ctx, dev),
            0
        );
        assert_eq!(cu.get::<CuFn1<*mut c_void>>("cuCtxSetCurrent")(ctx), 0);

        let mut name: *const c_char = std::ptr::null();
        assert_eq!(
            cu.get::<CuFn2<i32, *mut *const c_char>>("cuGetErrorName")(700, &mut name),
            0
        );
        assert_eq!(
            std::ffi::CStr::from_ptr(name).to_str().unwrap(),
            "CUDA_ERROR_ILLEGAL_ADDRESS"
        );

        // Entry points by name.
        let proc: ProcAddress = cu.get("cuGetProcAddress_v2");
        let mut pfn: *mut c_void = std::ptr::null_mut();
        let mut status = -1;
        let sym = CString::new("cuMemAlloc").unwrap();
        assert_eq!(proc(sym.as_ptr(), &mut pfn, 12080, 0, &mut status), 0);
        assert!(!pfn.is_null() && status == 0, "cuMemAlloc resolves");
        let sym = CString::new("cuNoSuchFunction").unwrap();
        assert_eq!(proc(sym.as_ptr(), &mut pfn, 12080, 0, &mut status), 0);
        assert!(pfn.is_null(), "an unknown name gives NULL");
        assert_eq!(status, 1, "CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND");

        // Modules and functions.
        let ptx = CString::new(PTX).unwrap();
        let mut module: *mut c_void = std::ptr::null_mut();
        assert_eq!(
            cu.get::<CuFn2<*mut *mut c_void, *const c_void>>("cuModuleLoadData")(
                &mut module,
                ptx.as_ptr().cast()
            ),
            0,
            "the PTX fixture loads"
        );
        let get_function: CuFn3<*mut *mut c_void, *mut c_void, *const c_char> =
            cu.get("cuModuleGetFunction");
        let mut func: *mut c_void = std::ptr::null_mut();
        let missing = CString::new("no_such_kernel").unwrap();
        assert_eq!(
            get_function(&mut func, module, missing.as_ptr()),
            500,
            "CUDA_ERROR_NOT_FOUND"
        );
        let vector_add = CString::new("vector_add").unwrap();
        assert_eq!(get_function(&mut func, module, vector_add.as_ptr()), 0);

        // Memory: copies out of range, freed pointers.
        let alloc: CuFn2<*mut u64, usize> = cu.get("cuMemAlloc_v2");
        let free: CuFn1<u64> = cu.get("cuMemFree_v2");
        let htod: CuFn3<u64, *const c_void, usize> = cu.get("cuMemcpyHtoD_v2");
        let dtoh: CuFn3<*mut c_void, u64, usize> = cu.get("cuMemcpyDtoH_v2");
        let mut d = 0u64;
        assert_eq!(alloc(&mut d, 1024), 0);
        let data = [7u8; 2048];
        assert_eq!(htod(d, data.as_ptr().cast(), 1024), 0);
        assert_eq!(
            htod(d + 1000, data.as_ptr().cast(), 100),
            1,
            "a copy past the allocation"
        );
        let mut back = [0u8; 1024];
        assert_eq!(dtoh(back.as_mut_ptr().cast(), d, 1024), 0);
        assert_eq!(back, [7u8; 1024]);
        assert_eq!(free(d), 0);
        assert_eq!(free(d), 1, "a second free: CUDA_ERROR_INVALID_VALUE");
        assert_eq!(
            htod(d, data.as_ptr().cast(), 16),
            1,
            "a copy into freed memory"
        );

        // Streams: a destroyed one is no longer a stream.
        let mut stream: *mut c_void = std::ptr::null_mut();
        assert_eq!(
            cu.get::<CuFn2<*mut *mut c_void, u32>>("cuStreamCreate")(&mut stream, 0),
            0
        );
        let query: CuFn1<*mut c_void> = cu.get("cuStreamQuery");
        assert_eq!(query(stream), 0);
        assert_eq!(
            query(std::ptr::null_mut()),
            0,
            "the NULL stream is the default stream"
        );
        assert_eq!(
            cu.get::<CuFn1<*mut c_void>>("cuStreamDestroy_v2")(stream),
            0
        );
        assert_eq!(
            query(stream),
            400,
            "a destroyed stream: CUDA_ERROR_INVALID_HANDLE"
        );

        // Launches beyond the device's limits.
        let launch: Launch = cu.get("cuLaunchKernel");
        let mut a = 0u64;
        assert_eq!(alloc(&mut a, 4096), 0);
        let mut n = 16i32;
        let mut args: [*mut c_void; 4] = [
            (&raw mut a).cast(),
            (&raw mut a).cast(),
            (&raw mut a).cast(),
            (&raw mut n).cast(),
        ];
        let null = std::ptr::null_mut();
        assert_eq!(
            launch(
                func,
                1,
                1,
                1,
                2048,
                1,
                1,
                0,
                null,
                args.as_mut_ptr(),
                null.cast()
            ),
            1,
            "2048 threads per block: CUDA_ERROR_INVALID_VALUE"
        );
        assert_eq!(
            launch(
                func,
                1,
                1,
                1,
                0,
                1,
                1,
                0,
                null,
                args.as_mut_ptr(),
                null.cast()
            ),
            1,
            "no threads: CUDA_ERROR_INVALID_VALUE"
        );
        assert_eq!(
            launch(
                func,
                1,
                1,
                1,
                16,
                1,
                1,
                0,
                null,
                args.as_mut_ptr(),
                null.cast()
            ),
            0
        );
        assert_eq!(
            cu.get::<unsafe extern "C" fn() -> i32>("cuCtxSynchronize")(),
            0
        );
        let mut out = [0f32; 16];
        assert_eq!(dtoh(out.as_mut_ptr().cast(), a, 64), 0);

        // Host functions in streams run in this process, after the
        // stream's earlier work, before later work.
        unsafe extern "C" fn bump(user: *mut c_void) {
            // SAFETY: the test passes a live u32.
            unsafe { *user.cast::<u32>() += 1 };
        }
        unsafe extern "C" fn note(_stream: *mut c_void, status: i32, user: *mut c_void) {
            // SAFETY: the test passes a live i32.
            unsafe { *user.cast::<i32>() = 1000 + status };
        }
        let host_func: CuFn3<*mut c_void, *mut c_void, *mut c_void> = cu.get("cuLaunchHostFunc");
        let add_callback: unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void, u32) -> i32 =
            cu.get("cuStreamAddCallback");
        let null = std::ptr::null_mut::<c_void>();
        let mut bumped = 0u32;
        let bump_fn = bump as unsafe extern "C" fn(*mut c_void) as *mut c_void;
        assert_eq!(
            host_func(null, bump_fn, (&mut bumped as *mut u32).cast()),
            0
        );
        assert_eq!(
            host_func(null, bump_fn, (&mut bumped as *mut u32).cast()),
            0
        );
        assert_eq!(cu.get::<CuFn1<*mut c_void>>("cuStreamSynchronize")(null), 0);
        assert_eq!(bumped, 2, "each host function ran once");
        assert_eq!(
            host_func(null, null, null),
            1,
            "no function: CUDA_ERROR_INVALID_VALUE"
        );
        let mut status = -1i32;
        let note_fn = note as unsafe extern "C" fn(*mut c_void, i32, *mut c_void) as *mut c_void;
        assert_eq!(
            add_callback(null, note_fn, (&mut status as *mut i32).cast(), 0),
            0
        );
        assert_eq!(cu.get::<CuFn1<*mut c_void>>("cuStreamSynchronize")(null), 0);
        assert_eq!(
            status, 1000,
            "the callback got the stream's status, CUDA_SUCCESS"
        );
        assert_eq!(
            add_callback(null, note_fn, (&mut status as *mut i32).cast(), 1),
            1,
            "flags must be 0"
        );
        println!("bad input: every check passed");
    }
}

#[test]
fn bad_input_gets_the_drivers_errors_directly_and_remoted() {
    if common::is_guest_half() {
        bad_input_checks();
        return;
    }
    let me = std::env::current_exe().expect("test binary");
    let args = [
        "--exact",
        "bad_input_gets_the_drivers_errors_directly_and_remoted",
        "--nocapture",
        "--test-threads=1",
    ];
    let mut c = direct(&me);
    c.env("AVA_TEST_ROLE", common::GUEST_ROLE).args(args);
    let native = run(c, "the checks on the stand-in", None);
    assert!(text(&native.stdout).contains("every check passed"));
    let s = stack("cuda-bad");
    let mut c = remoted(&s, &me);
    c.env("AVA_TEST_ROLE", common::GUEST_ROLE).args(args);
    let out = run(c, "the checks remoted", Some(&s));
    assert!(text(&out.stdout).contains("every check passed"));
}

// ------------------------------------------------------------------ entry points

/// The guest half: every `cu*` function the loaded `libcuda.so.1` exports
/// is what `cuGetProcAddress_v2` gives for its base name at CUDA 12.8 (the
/// per-thread default stream flag for `_ptsz`/`_ptds` names), unless a
/// newer ABI of that name replaces it; unknown names are not found.
fn entry_point_checks() {
    let cu = Cu::load();
    let proc: ProcAddress = cu.get("cuGetProcAddress_v2");
    // SAFETY: `info` is a local dladdr fills; the address is cuInit's.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    assert_ne!(
        // SAFETY: as above.
        unsafe { libc::dladdr(cu.f["cuInit"], &mut info) },
        0
    );
    // SAFETY: dladdr gave the library's NUL-terminated path.
    let path = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned();
    let nm = Command::new("nm")
        .args(["-D", "--defined-only", &path])
        .output()
        .expect("run nm");
    let exported: Vec<String> = text(&nm.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|n| n.starts_with("cu"))
        .map(str::to_owned)
        .collect();
    assert!(exported.len() > 100, "{path} exports {exported:?}");
    let name_of = |pfn: *mut c_void| -> String {
        // SAFETY: as above, for the address resolved.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if pfn.is_null() || unsafe { libc::dladdr(pfn, &mut info) } == 0 || info.dli_sname.is_null()
        {
            return "NULL".into();
        }
        // SAFETY: dladdr gave a NUL-terminated symbol name.
        unsafe { std::ffi::CStr::from_ptr(info.dli_sname) }
            .to_string_lossy()
            .into_owned()
    };
    // The name without its per-thread and ABI version suffixes.
    let base = |n: &str| {
        let n = n.trim_end_matches("_ptsz").trim_end_matches("_ptds");
        match n.rsplit_once("_v") {
            Some((b, v)) if v.parse::<u32>().is_ok() => b.to_owned(),
            _ => n.to_owned(),
        }
    };
    // The versions real clients ask for (cuda-python asks each ABI at the
    // version that introduced it).
    let versions = [
        2000, 3020, 4000, 6000, 7000, 9020, 10000, 11020, 11040, 12000, 12080,
    ];
    let mut checked = 0;
    for name in &exported {
        let flags = if name.ends_with("_ptsz") || name.ends_with("_ptds") {
            2
        } else {
            0
        };
        let sym = CString::new(base(name)).unwrap();
        let mut seen = Vec::new();
        for v in versions {
            let mut pfn: *mut c_void = std::ptr::null_mut();
            let mut status = -1;
            // SAFETY: a NUL-terminated name and local outputs.
            let rc = unsafe { proc(sym.as_ptr(), &mut pfn, v, flags, &mut status) };
            assert_eq!(rc, 0, "{name} at {v}");
            seen.push(name_of(pfn));
        }
        assert!(
            seen.contains(name),
            "{} (flags {flags}) never resolves to {name}: {seen:?}",
            base(name)
        );
        checked += 1;
    }
    for unknown in ["cuNoSuchFunction", "cuMemAlloc_v2", "avaProcName"] {
        let sym = CString::new(unknown).unwrap();
        let mut pfn: *mut c_void = std::ptr::dangling_mut();
        let mut status = -1;
        // SAFETY: as above.
        let rc = unsafe { proc(sym.as_ptr(), &mut pfn, 12080, 0, &mut status) };
        assert_eq!((rc, pfn.is_null(), status), (0, true, 1), "{unknown}");
    }
    println!("entry points: {checked} exported names resolve");
}

#[test]
fn every_exported_entry_point_resolves_through_get_proc_address() {
    if common::is_guest_half() {
        entry_point_checks();
        return;
    }
    let me = std::env::current_exe().expect("test binary");
    let args = [
        "--exact",
        "every_exported_entry_point_resolves_through_get_proc_address",
        "--nocapture",
        "--test-threads=1",
    ];
    let mut c = direct(&me);
    c.env("AVA_TEST_ROLE", common::GUEST_ROLE).args(args);
    let native = run(c, "the entry point checks on the stand-in", None);
    let s = stack("cuda-procs");
    let mut c = remoted(&s, &me);
    c.env("AVA_TEST_ROLE", common::GUEST_ROLE).args(args);
    let out = run(c, "the entry point checks remoted", Some(&s));
    assert!(
        text(&out.stdout).contains("exported names resolve"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&native.stdout).contains("exported names resolve"));
}

// ------------------------------------------------------------------ real clients, unmodified

/// The unmodified cudarc program (`samples/cuda-clients`).
fn cudarc_client() -> PathBuf {
    let p = target_dir().join("cudarc-client");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace`",
        p.display()
    );
    p
}

#[test]
fn the_cudarc_client_gives_the_same_output_remoted() {
    let native = run(
        direct(cudarc_client()),
        "cudarc-client on the stand-in",
        None,
    );
    let s = stack("cuda-cudarc");
    let out = run(
        remoted(&s, cudarc_client()),
        "cudarc-client remoted",
        Some(&s),
    );
    assert!(
        text(&native.stdout).contains("vector_add: n=4096"),
        "{}",
        text(&native.stdout)
    );
    assert_eq!(
        text(&out.stdout),
        text(&native.stdout),
        "remoted output differs"
    );
    assert!(s.log().contains("api=cuda"), "the guest named the CUDA API");
}

/// Runs the cuda-python program `script` (in `samples/cuda/`) on the
/// stand-in and remoted (a worker of its own, named `tag`), with `env` set
/// in both; its output, which must hold `expect`, must be the same.
fn cuda_python_same_output(tag: &str, script: &str, env: &[(&str, &str)], expect: &str) {
    let setup = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cuda-python.sh"))
        .output()
        .expect("run scripts/cuda-python.sh");
    assert!(
        setup.status.success(),
        "cuda-python could not be installed:\n{}{}",
        text(&setup.stdout),
        text(&setup.stderr)
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/cuda")
        .join(script);
    let mut c = direct("/usr/bin/python3");
    c.arg(&script).envs(env.iter().copied());
    let native = run(c, "the cuda-python program on the stand-in", None);
    let s = stack(tag);
    let mut c = remoted(&s, "/usr/bin/python3");
    c.arg(&script).envs(env.iter().copied());
    let out = run(c, "the cuda-python program remoted", Some(&s));
    assert!(
        text(&native.stdout).contains(expect),
        "{}",
        text(&native.stdout)
    );
    assert_eq!(
        text(&out.stdout),
        text(&native.stdout),
        "remoted output differs"
    );
}

#[test]
fn the_cuda_python_client_gives_the_same_output_remoted() {
    cuda_python_same_output("cuda-python", "cuda_python_client.py", &[], "saxpy: n=2048");
}

#[test]
fn unified_2d_and_3d_copies_give_the_same_results_remoted() {
    cuda_python_same_output(
        "cuda-features",
        "cuda_python_features.py",
        &[],
        "entry point cuLaunchKernel@12000: cuLaunchKernel (",
    );
}

#[test]
fn the_per_thread_default_stream_forms_give_the_same_results_remoted() {
    cuda_python_same_output(
        "cuda-per-thread",
        "cuda_python_features.py",
        &[("CUDA_PYTHON_CUDA_PER_THREAD_DEFAULT_STREAM", "1")],
        "entry point cuLaunchKernel@12000: cuLaunchKernel_ptsz (",
    );
}

#[test]
fn an_opencl_guest_and_a_cuda_guest_share_one_worker_at_once() {
    let s = stack("cuda-both");
    let vecadd = common::build_sample("vecadd");
    let opencl = s.remote(&vecadd).spawn().expect("start the OpenCL guest");
    let cuda = remoted(&s, cudarc_client())
        .spawn()
        .expect("start the CUDA guest");
    for (what, child) in [("the OpenCL guest", opencl), ("the CUDA guest", cuda)] {
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{what} failed:\n{}", s.log());
    }
    let log = s.log();
    assert!(log.contains("api=opencl"), "{log}");
    assert!(log.contains("api=cuda"), "{log}");
}

// ------------------------------------------------------------------ fault isolation

/// A guest half that makes an illegal address in a kernel and checks that
/// the driver reports it (sticky) at the next synchronization.
fn fault_half() {
    let cu = Cu::load();
    // SAFETY: every call passes arguments of the C prototype of the
    // function named, with outputs that are locals.
    unsafe {
        let (func, _) = setup(&cu, "fault");
        let mut d = 0u64;
        assert_eq!(
            cu.get::<CuFn2<*mut u64, usize>>("cuMemAlloc_v2")(&mut d, 256),
            0
        );
        let mut args: [*mut c_void; 1] = [(&raw mut d).cast()];
        let launch: Launch = cu.get("cuLaunchKernel");
        let null = std::ptr::null_mut();
        let _ = launch(
            func,
            1,
            1,
            1,
            1,
            1,
            1,
            0,
            null,
            args.as_mut_ptr(),
            null.cast(),
        );
        let r = cu.get::<unsafe extern "C" fn() -> i32>("cuCtxSynchronize")();
        assert_eq!(
            r, 700,
            "CUDA_ERROR_ILLEGAL_ADDRESS at the next synchronization"
        );
        println!("fault: CUDA_ERROR_ILLEGAL_ADDRESS");
    }
}

/// Initialises, makes the primary context current and finds `kernel`.
///
/// # Safety
/// `cu` is a loaded driver.
unsafe fn setup(cu: &Cu, kernel: &str) -> (*mut c_void, i32) {
    // SAFETY: as the caller's; outputs are locals.
    unsafe {
        assert_eq!(cu.get::<CuFn1<u32>>("cuInit")(0), 0);
        let mut ctx: *mut c_void = std::ptr::null_mut();
        let r = cu.get::<CuFn2<*mut *mut c_void, i32>>("cuDevicePrimaryCtxRetain")(&mut ctx, 0);
        if r != 0 {
            return (std::ptr::null_mut(), r);
        }
        let r = cu.get::<CuFn1<*mut c_void>>("cuCtxSetCurrent")(ctx);
        if r != 0 {
            return (std::ptr::null_mut(), r);
        }
        let ptx = CString::new(PTX).unwrap();
        let mut module: *mut c_void = std::ptr::null_mut();
        let r = cu.get::<CuFn2<*mut *mut c_void, *const c_void>>("cuModuleLoadData")(
            &mut module,
            ptx.as_ptr().cast(),
        );
        if r != 0 {
            return (std::ptr::null_mut(), r);
        }
        let name = CString::new(kernel).unwrap();
        let mut func: *mut c_void = std::ptr::null_mut();
        let r = cu
            .get::<CuFn3<*mut *mut c_void, *mut c_void, *const c_char>>("cuModuleGetFunction")(
            &mut func,
            module,
            name.as_ptr(),
        );
        (func, r)
    }
}

/// A guest half that adds two vectors and prints whether the results are
/// right, or the first error it gets.
fn healthy_half() {
    let cu = Cu::load();
    // SAFETY: every call passes arguments of the C prototype of the
    // function named, with outputs that are locals.
    let r = unsafe {
        let (func, r) = setup(&cu, "vector_add");
        if r != 0 {
            r
        } else {
            let alloc: CuFn2<*mut u64, usize> = cu.get("cuMemAlloc_v2");
            let htod: CuFn3<u64, *const c_void, usize> = cu.get("cuMemcpyHtoD_v2");
            let dtoh: CuFn3<*mut c_void, u64, usize> = cu.get("cuMemcpyDtoH_v2");
            let n = 256u32;
            let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let (mut da, mut dc) = (0u64, 0u64);
            let mut r = alloc(&mut da, 1024);
            if r == 0 {
                r = alloc(&mut dc, 1024);
            }
            if r == 0 {
                r = htod(da, a.as_ptr().cast(), 1024);
            }
            let mut nn = n;
            let mut args: [*mut c_void; 4] = [
                (&raw mut da).cast(),
                (&raw mut da).cast(),
                (&raw mut dc).cast(),
                (&raw mut nn).cast(),
            ];
            let null = std::ptr::null_mut();
            if r == 0 {
                r = cu.get::<Launch>("cuLaunchKernel")(
                    func,
                    1,
                    1,
                    1,
                    n,
                    1,
                    1,
                    0,
                    null,
                    args.as_mut_ptr(),
                    null.cast(),
                );
            }
            if r == 0 {
                r = cu.get::<unsafe extern "C" fn() -> i32>("cuCtxSynchronize")();
            }
            let mut c = vec![0f32; n as usize];
            if r == 0 {
                r = dtoh(c.as_mut_ptr().cast(), dc, 1024);
            }
            if r == 0 {
                assert!(
                    c.iter().enumerate().all(|(i, &v)| v == 2.0 * i as f32),
                    "vector_add results"
                );
            }
            r
        }
    };
    if r == 0 {
        println!("healthy: results correct");
    } else {
        println!("healthy: error {r}");
    }
}

/// Runs guest half `test` (a test of this file) remoted on `region`.
fn half(stack: &Stack, region: &Path, test: &str) -> String {
    let mut c = remoted(stack, std::env::current_exe().expect("test binary"));
    c.env("AVA_REGION", region)
        .env("AVA_TEST_ROLE", common::GUEST_ROLE)
        .args(["--exact", test, "--nocapture", "--test-threads=1"]);
    text(&run(c, test, Some(stack)).stdout)
}

#[test]
fn guest_half_fault() {
    if common::is_guest_half() {
        fault_half();
    }
}

#[test]
fn guest_half_healthy() {
    if common::is_guest_half() {
        healthy_half();
    }
}

/// Two VMs on one worker, in isolation groups of their own or in one
/// shared group; returns the worker and the two regions.
fn two_vms(tag: &str, shared: bool) -> (Stack, PathBuf, PathBuf) {
    let first = PathBuf::from(format!("/dev/shm/ava-test-{tag}-{}", std::process::id()));
    let second = PathBuf::from(format!("/dev/shm/ava-test-{tag}-b-{}", std::process::id()));
    let _ = std::fs::remove_file(&second);
    let lib = standin();
    let group = format!("team={},{}", first.display(), second.display());
    let mut args = vec![
        "--arena-size",
        "8388608",
        "--backends",
        "opencl,cuda",
        "--cuda-lib",
        lib.to_str().expect("utf-8 path"),
        "--region",
        second.to_str().expect("utf-8 path"),
    ];
    if shared {
        args.extend(["--isolation-group", &group]);
    }
    let s = Stack::launch(tag, &args, &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !s
        .log()
        .contains(&format!("serving region={}", second.display()))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the second region is not served:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (s, first, second)
}

#[test]
fn a_fault_in_one_vms_kernel_leaves_a_vm_of_another_group_running() {
    let (s, a, b) = two_vms("cuda-iso", false);
    assert!(half(&s, &b, "guest_half_healthy").contains("healthy: results correct"));
    assert!(half(&s, &a, "guest_half_fault").contains("fault: CUDA_ERROR_ILLEGAL_ADDRESS"));
    let after = half(&s, &b, "guest_half_healthy");
    assert!(
        after.contains("healthy: results correct"),
        "{after}\n{}",
        s.log()
    );
    let _ = std::fs::remove_file(&b);
}

#[test]
fn a_fault_in_a_shared_context_reaches_every_vm_of_the_group_with_the_drivers_error() {
    let (s, a, b) = two_vms("cuda-shared", true);
    assert!(half(&s, &b, "guest_half_healthy").contains("healthy: results correct"));
    assert!(half(&s, &a, "guest_half_fault").contains("fault: CUDA_ERROR_ILLEGAL_ADDRESS"));
    // The primary context is the group's: the other VM's next calls get
    // the driver's sticky error, at once (never a hang).
    let after = half(&s, &b, "guest_half_healthy");
    assert!(after.contains("healthy: error 700"), "{after}\n{}", s.log());
    let _ = std::fs::remove_file(&b);
}

// ------------------------------------------------------------------ device memory of another VM

/// The address of the owner's allocation, for the thief half.
const TARGET: &str = "AVA_TEST_CUDA_TARGET";

/// A guest half that allocates 4 KiB, fills it, prints its address and
/// keeps it until its stdin closes.
fn owner_half() {
    let cu = Cu::load();
    // SAFETY: every call passes arguments of the C prototype of the
    // function named, with outputs that are locals.
    unsafe {
        let (_, r) = setup(&cu, "empty");
        assert_eq!(r, 0);
        let alloc: CuFn2<*mut u64, usize> = cu.get("cuMemAlloc_v2");
        let memset: CuFn3<u64, u8, usize> = cu.get("cuMemsetD8_v2");
        let mut a = 0u64;
        assert_eq!(alloc(&mut a, 4096), 0);
        assert_eq!(memset(a, 0x5a, 4096), 0);
        println!("owner: address={a}");
    }
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn guest_half_owner() {
    if common::is_guest_half() {
        owner_half();
    }
}

/// A guest half of another VM that tries to read, write, copy and clear the
/// owner's allocation, then does the same with an allocation of its own.
fn thief_half() {
    let cu = Cu::load();
    let target: u64 = std::env::var(TARGET)
        .expect("the target address")
        .parse()
        .expect("a number");
    // SAFETY: every call passes arguments of the C prototype of the
    // function named, with outputs and buffers that are locals.
    unsafe {
        let (_, r) = setup(&cu, "empty");
        assert_eq!(r, 0);
        let alloc: CuFn2<*mut u64, usize> = cu.get("cuMemAlloc_v2");
        let htod: CuFn3<u64, *const c_void, usize> = cu.get("cuMemcpyHtoD_v2");
        let dtoh: CuFn3<*mut c_void, u64, usize> = cu.get("cuMemcpyDtoH_v2");
        let dtod: CuFn3<u64, u64, usize> = cu.get("cuMemcpyDtoD_v2");
        let memset: CuFn3<u64, u8, usize> = cu.get("cuMemsetD8_v2");
        let mut own = 0u64;
        assert_eq!(alloc(&mut own, 4096), 0);
        let mut buf = vec![0u8; 4096];
        let tries = [
            ("read", dtoh(buf.as_mut_ptr().cast(), target + 16, 64)),
            ("write", htod(target, buf.as_ptr().cast(), 64)),
            ("copy out", dtod(own, target, 64)),
            ("copy in", dtod(target + 1024, own, 64)),
            ("clear", memset(target, 0, 4096)),
            ("read across", dtoh(buf.as_mut_ptr().cast(), target - 8, 64)),
        ];
        for (what, rc) in tries {
            println!("thief: {what} {rc}");
        }
        println!("thief: saw the owner's bytes: {}", buf.contains(&0x5a));
        let ok = memset(own, 7, 4096) == 0
            && dtoh(buf.as_mut_ptr().cast(), own, 4096) == 0
            && buf.iter().all(|&b| b == 7);
        println!("thief: own memory ok: {ok}");
    }
}

#[test]
fn guest_half_thief() {
    if common::is_guest_half() {
        thief_half();
    }
}

/// In a shared isolation group (one context for two VMs), a VM that knows
/// another VM's device address still cannot read, write, copy or clear
/// that memory: each such copy or memset is `CUDA_ERROR_INVALID_VALUE`,
/// and the owner's bytes stay as they were; its own memory works.
#[test]
fn a_vm_cannot_copy_from_or_to_another_vms_device_memory_in_a_shared_context() {
    let (s, a, b) = two_vms("cuda-foreign", true);
    let mut owner = remoted(&s, std::env::current_exe().expect("test binary"));
    owner
        .env("AVA_REGION", &a)
        .env("AVA_TEST_ROLE", common::GUEST_ROLE)
        .args([
            "--exact",
            "guest_half_owner",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(std::process::Stdio::piped());
    let mut owner = common::Spawned::start(owner);
    let line = owner.wait_for_line("owner: address=", Duration::from_secs(120));
    let address = line
        .trim()
        .rsplit('=')
        .next()
        .expect("an address")
        .to_string();
    let mut c = remoted(&s, std::env::current_exe().expect("test binary"));
    c.env("AVA_REGION", &b)
        .env(TARGET, &address)
        .env("AVA_TEST_ROLE", common::GUEST_ROLE)
        .args([
            "--exact",
            "guest_half_thief",
            "--nocapture",
            "--test-threads=1",
        ]);
    let out = text(&run(c, "guest_half_thief", Some(&s)).stdout);
    for what in [
        "read",
        "write",
        "copy out",
        "copy in",
        "clear",
        "read across",
    ] {
        assert!(
            out.contains(&format!("thief: {what} 1\n")),
            "{what} was not refused with CUDA_ERROR_INVALID_VALUE:\n{out}\n{}",
            s.log()
        );
    }
    assert!(out.contains("thief: saw the owner's bytes: false"), "{out}");
    assert!(out.contains("thief: own memory ok: true"), "{out}");
    assert!(
        s.log().contains("reaches another VM's memory: refused"),
        "{}",
        s.log()
    );
    drop(owner);
    let _ = std::fs::remove_file(&b);
}

// ------------------------------------------------------------------ device memory: quotas and cleanup

/// A guest half: allocations within and beyond the VM's 4 MiB quota, a
/// free that gives room back, and one allocation left for the worker to
/// free when the process exits.
fn quota_half() {
    let cu = Cu::load();
    // SAFETY: every call passes arguments of the C prototype of the
    // function named, with outputs that are locals.
    unsafe {
        let (_, r) = setup(&cu, "empty");
        assert_eq!(r, 0);
        let alloc: CuFn2<*mut u64, usize> = cu.get("cuMemAlloc_v2");
        let free: CuFn1<u64> = cu.get("cuMemFree_v2");
        let (mut a, mut b) = (0u64, 0u64);
        assert_eq!(alloc(&mut a, 3 << 20), 0, "3 MiB within the quota");
        assert_eq!(
            alloc(&mut b, 2 << 20),
            2,
            "2 MiB more: CUDA_ERROR_OUT_OF_MEMORY"
        );
        assert_eq!(free(a), 0);
        assert_eq!(alloc(&mut b, 2 << 20), 0, "the free gave the room back");
        assert_eq!(free(0x1234_5678), 1, "an address never allocated");
        // Stream-ordered allocations count too, from any pool.
        let mut pool: *mut c_void = std::ptr::null_mut();
        assert_eq!(
            cu.get::<CuFn2<*mut *mut c_void, i32>>("cuDeviceGetDefaultMemPool")(&mut pool, 0),
            0
        );
        let from_pool: unsafe extern "C" fn(*mut u64, usize, *mut c_void, *mut c_void) -> i32 =
            cu.get("cuMemAllocFromPoolAsync");
        let alloc_async: CuFn3<*mut u64, usize, *mut c_void> = cu.get("cuMemAllocAsync");
        let free_async: CuFn2<u64, *mut c_void> = cu.get("cuMemFreeAsync");
        let null = std::ptr::null_mut();
        let mut c = 0u64;
        assert_eq!(
            from_pool(&mut c, 3 << 20, pool, null),
            2,
            "from a pool, beyond"
        );
        assert_eq!(
            alloc_async(&mut c, 3 << 20, null),
            2,
            "stream-ordered, beyond"
        );
        assert_eq!(
            from_pool(&mut c, 1 << 20, pool, null),
            0,
            "from a pool, within"
        );
        assert_eq!(
            alloc_async(&mut a, 2 << 20, null),
            2,
            "the pool's MiB counts"
        );
        assert_eq!(free_async(c, null), 0);
        assert_eq!(
            alloc_async(&mut c, 1 << 20, null),
            0,
            "its free gave it back"
        );
        assert_eq!(free_async(c, null), 0);
        // The frees are asynchronous: a synchronizing call makes sure the
        // worker has made them before this process exits.
        let sync: unsafe extern "C" fn() -> i32 = cu.get("cuCtxSynchronize");
        assert_eq!(sync(), 0);
        println!("quota: held; leaving 2 MiB allocated");
    }
}

#[test]
fn guest_half_quota() {
    if common::is_guest_half() {
        quota_half();
    }
}

#[test]
fn cuda_memory_is_charged_to_the_quota_and_freed_when_the_guest_exits() {
    let pid = std::process::id();
    let region = PathBuf::from(format!("/dev/shm/ava-test-cuda-quota-{pid}"));
    let _ = std::fs::remove_file(&region);
    let config = std::env::temp_dir().join(format!("ava-cuda-quota-{pid}.toml"));
    std::fs::write(
        &config,
        format!(
            "[[vm]]\nname = \"vm0\"\nregion = \"{}\"\nmemory_quota = \"4MiB\"\n",
            region.display()
        ),
    )
    .expect("write the configuration");
    let log = std::env::temp_dir().join(format!("ava-cuda-quota-{pid}.log"));
    let lib = standin();
    let mut child = Command::new(common::worker_bin())
        .arg("--config")
        .arg(&config)
        .args([
            "--arena-size",
            "8388608",
            "--backends",
            "cuda",
            "--cuda-lib",
        ])
        .arg(&lib)
        .env("AVA_LOG", "info")
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start ava-worker");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !transport::Region::open(&region).is_ok_and(|r| r.worker_heartbeat() > 0) {
        assert!(std::time::Instant::now() < deadline, "{}", read_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = Command::new(std::env::current_exe().expect("test binary"));
    c.env("LD_LIBRARY_PATH", driver_dir("remoted", &guestlib_cuda()))
        .env("AVA_REGION", &region)
        .env("AVA_TEST_ROLE", common::GUEST_ROLE)
        .args([
            "--exact",
            "guest_half_quota",
            "--nocapture",
            "--test-threads=1",
        ]);
    let out = run_capture(c, Duration::from_secs(60));
    let ok = out.status.success() && text(&out.stdout).contains("quota: held");
    // The worker frees what the exited process left, and says so.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ok && !read_log().contains("freeing the CUDA memory a guest left") {
        if std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    let log_text = read_log();
    let _ = std::fs::remove_file(&region);
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_file(&log);
    assert!(ok, "{}{}\n{log_text}", text(&out.stdout), text(&out.stderr));
    assert!(
        log_text.contains("freeing the CUDA memory a guest left")
            && log_text.contains("allocations=1"),
        "{log_text}"
    );
}
