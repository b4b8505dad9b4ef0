//! The C samples of `samples/opencl/`, run natively and through the guest
//! library: both must succeed and print the same output.
//!
//! Each test starts its own worker, so a worker that fails in one test
//! does not affect the others. PoCL compiles kernels with LLVM, so the
//! timeouts are generous.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

const NATIVE_TIMEOUT: Duration = Duration::from_secs(120);
const REMOTE_TIMEOUT: Duration = Duration::from_secs(180);

/// Builds sample `name`, runs it natively and remoted; returns both outputs.
fn run_both(stack: &mut common::Stack, name: &str) -> (Output, Output) {
    let exe = common::build_sample(name);
    let outputs = common::run_both(
        name,
        Command::new(&exe),
        NATIVE_TIMEOUT,
        stack.remote(&exe),
        REMOTE_TIMEOUT,
    );
    let _ = std::fs::remove_file(&exe);
    outputs
}

/// Both runs succeed, print the same lines, and each output contains each
/// of `expect` (so a sample that prints nothing cannot pass).
fn check_sample(name: &str, expect: &[&str]) {
    let mut stack = common::Stack::start(&format!("sample-{name}"));
    let (native, remote) = run_both(&mut stack, name);
    let n = common::text(&native.stdout);
    assert!(
        native.status.success(),
        "native {name} failed ({}):\n{n}\n{}",
        native.status,
        String::from_utf8_lossy(&native.stderr)
    );
    for e in expect {
        assert!(n.contains(e), "native {name} output lacks {e:?}:\n{n}");
    }
    if !remote.status.success() {
        panic!("{}", common::remote_failure(&mut stack, name, &remote));
    }
    let r = common::text(&remote.stdout);
    for e in expect {
        assert!(r.contains(e), "remoted {name} output lacks {e:?}:\n{r}");
    }
    common::assert_same_lines(name, &n, &r);
    assert!(
        stack.log().contains("guest attached"),
        "the calls went through the worker"
    );
}

/// The sample linked with the system's ICD loader as natively, the guest
/// library installed beside it as a driver (`ava.icd`): same output.
#[test]
fn vecadd_through_the_icd_loader_equals_native() {
    let stack = common::Stack::start("sample-vecadd-icd");
    let vendors = common::icd_vendors_dir("vecadd", false);
    let exe = common::build_sample("vecadd");
    let (native, remote) = common::run_both(
        "vecadd",
        Command::new(&exe),
        NATIVE_TIMEOUT,
        stack.remote_icd(&exe, &vendors),
        REMOTE_TIMEOUT,
    );
    let _ = std::fs::remove_file(&exe);
    let (n, r) = (common::text(&native.stdout), common::text(&remote.stdout));
    assert!(
        native.status.success() && n.contains("mismatches: 0"),
        "native vecadd:\n{n}"
    );
    assert!(
        remote.status.success(),
        "vecadd through ava.icd failed ({}):\n{r}\n{}",
        remote.status,
        common::text(&remote.stderr)
    );
    common::assert_same_lines("vecadd", &n, &r);
    assert!(
        stack.log().contains("guest attached"),
        "the calls went through the worker"
    );
}

#[test]
fn vecadd_remoted_equals_native() {
    check_sample(
        "vecadd",
        &[
            "vecadd: n=1048576",
            "checksum: 399128712.00",
            "c[123456] = 258.75",
            "mismatches: 0",
        ],
    );
}

#[test]
fn matmul_remoted_equals_native() {
    check_sample(
        "matmul",
        &[
            "matmul: n=256 tile=",
            "checksum: 16776232.0",
            "CPU check: ok",
        ],
    );
}

#[test]
fn image_remoted_equals_native() {
    // The device must support images (else the sample only says it has
    // none), and the rows read back must be the rows written.
    check_sample(
        "image",
        &["image: ", "checksum", "read-back rows intact: yes"],
    );
}

#[test]
fn events_remoted_equals_native() {
    check_sample(
        "events",
        &[
            "kernel pending before the user event: yes",
            "profiling timestamps ordered (queued <= submit <= start <= end): yes",
            "callback calls: 1",
            "callback status: 0",
            "callback value from user_data: 41",
            "mismatches: 0",
        ],
    );
}

#[test]
fn build_fail_remoted_equals_native() {
    check_sample(
        "build_fail",
        &[
            "clBuildProgram(bad source): -11 (CL_BUILD_PROGRAM_FAILURE)",
            "log non-empty: yes",
            "log mentions error: yes",
            "build status (bad source): -2 (CL_BUILD_ERROR)",
            "notify ran: yes (1 call)",
            "notify got the built program: yes",
            "build status (good source): 0 (CL_BUILD_SUCCESS)",
        ],
    );
}

#[test]
fn threads_remoted_equals_native() {
    check_sample(
        "threads",
        &[
            "thread 0: n=1000 ",
            "thread 1: ",
            "thread 2: ",
            "thread 3: n=64051 ",
            "mismatches=0 ok",
        ],
    );
}

/// One thread blocks in `clWaitForEvents` on a user event that another
/// thread completes: each thread has its own channel, served by its own
/// worker thread, so the second thread is not held up by the first.
#[test]
fn cross_thread_remoted_equals_native() {
    check_sample(
        "cross_thread",
        &[
            "waiter saw status 0 (CL_COMPLETE = 0)",
            "completer kernel sum: 1547776",
            "cross_thread OK",
        ],
    );
}

/// `errors.c` prints the code of each bad call; every line, the summary and
/// the exit status must be identical.
#[test]
fn errors_remoted_equals_native() {
    let mut stack = common::Stack::start("sample-errors");
    let (native, remote) = run_both(&mut stack, "errors");
    let (n, r) = (common::text(&native.stdout), common::text(&remote.stdout));
    assert_eq!(
        native.status.code(),
        Some(0),
        "native errors: a case returned an unexpected code:\n{n}"
    );
    for e in [
        "clGetPlatformInfo(NAME, 2-byte buffer)",
        "clCreateBuffer(size 0)",
        "clCreateKernel(wrong name)",
        "clWaitForEvents(0, NULL)",
        "mismatches: 0",
    ] {
        assert!(n.contains(e), "native errors output lacks {e:?}:\n{n}");
    }
    if remote.status.code().is_none_or(|c| c >= 100) {
        panic!("{}", common::remote_failure(&mut stack, "errors", &remote));
    }
    // Every error code, the summary line and the exit status are the same.
    common::assert_same_lines("errors", &n, &r);
    assert_eq!(
        remote.status.code(),
        Some(0),
        "remoted exit status: no mismatch"
    );
}

/// Object handles returned by info queries are the guest's own handles,
/// usable in further calls; a sub-buffer works like its region of the
/// parent.
#[test]
fn info_handles_remoted_equals_native() {
    check_sample(
        "info_handles",
        &[
            "clGetProgramInfo(CL_PROGRAM_DEVICES)",
            "clGetMemObjectInfo(CL_MEM_ASSOCIATED_MEMOBJECT)",
            "32 of 128 ints incremented (ints 32..63: yes)",
            "handles that differ: 0",
        ],
    );
}

/// A program's binary read back (`CL_PROGRAM_BINARIES`: an array of
/// pointers, each filled by the guest library through `avaProgramBinary`),
/// then used to create a program whose kernel runs: remoted equals native.
#[test]
fn binaries_remoted_equals_native() {
    check_sample(
        "binaries",
        &[
            "clGetProgramInfo(CL_PROGRAM_BINARIES): 0",
            "binary pointer kept: yes",
            "kernel from the binary: sum 1498500, mismatches 0",
        ],
    );
}

/// Mapping (`samples/opencl/map.c`): reads, writes, write-invalidate,
/// ranges, events, two mappings at once and bad ranges, on a buffer that
/// lives in the heap (1 MiB, mapped in place) and on one that does not
/// (96 MiB, larger than the heap and than the arena: mapped through the
/// guest library's memory, moved in pieces).
#[test]
fn map_remoted_equals_native() {
    check_sample(
        "map",
        &[
            "1 MiB: two mappings at once                      ok",
            "96 MiB: map a range for writing                  ok",
            "96 MiB: unmap of a pointer never mapped: -30",
            "failures: 0",
        ],
    );
}

/// Mapping images (`samples/opencl/map_image.c`): 2D, 3D and 1D-array
/// images mapped for reading and writing, with the image's own pitches,
/// two mappings at once, an invalidating map, a non-blocking map with its
/// event, and the errors of invalid maps: the same output remoted.
#[test]
fn map_image_remoted_equals_native() {
    check_sample(
        "map_image",
        &[
            "2D map for reading: row pitch 256, slice pitch 0",
            "after writing through the map: pixel (8,4) = 17",
            "after an invalidating map: pixel (0,0) = 119",
            "3D map: row pitch 64, slice pitch 512",
            "no row pitch pointer: -30",
            "done",
        ],
    );
}

/// Native kernels (`samples/opencl/native_kernel.c`): a function of the
/// program run on its arguments with buffers replaced by pointers to their
/// contents, its event, a kernel reading what it wrote, and the errors of
/// invalid calls: the same output remoted.
#[test]
fn native_kernel_remoted_equals_native() {
    check_sample(
        "native_kernel",
        &[
            "native kernels: yes",
            "out[0] = 7, out[999] = 2005, sum by a kernel = 1006000",
            "on the program's own memory: host[9] = 19",
            "done",
        ],
    );
}

/// Shared virtual memory (`samples/opencl/svm.c`): a linked list and a
/// pointer table built by the program in SVM memory and followed by
/// kernels (one address on both sides), SVM copies (between allocations
/// and with the program's memory), fills, maps, migration, frees by
/// callback, and the errors of invalid calls: the same output remoted.
#[test]
fn svm_remoted_equals_native() {
    check_sample(
        "svm",
        &[
            "list walked by a kernel: 100 nodes, sum 5050",
            "gathered through a pointer table: 500 430 360 290 220 150 80 10",
            "fill, kernel, copy, copy in: b[0]=6 b[512]=100 b[527]=115 sum 7768",
            "freed by the callback: 2",
            "fine-grained allocation after the frees: ok",
            "done",
        ],
    );
}

/// `CL_MEM_USE_HOST_PTR` (`samples/opencl/host_ptr.c`): the buffer's host
/// pointer and flags are the program's, and mapping returns
/// `host_ptr + offset` with the kernel's results there.
#[test]
fn host_ptr_remoted_equals_native() {
    check_sample(
        "host_ptr",
        &[
            "CL_MEM_HOST_PTR is the program's pointer     ok",
            "the kernel's results are in the program's memory ok",
            "CL_MEM_HOST_PTR into 2 bytes: -30",
            "failures: 0",
        ],
    );
}

/// `CL_CONTEXT_PROPERTIES` (`samples/opencl/context_properties.c`): the
/// properties as given, with the program's own platform id.
#[test]
fn context_properties_remoted_equals_native() {
    check_sample(
        "context_properties",
        &[
            "properties size: 24",
            "platform is the program's: yes",
            "into 8 bytes: -30",
            "no properties: size 0",
        ],
    );
}

/// Device partitioning (`samples/opencl/sub_devices.c`): sub-devices made
/// equally and by counts, their parent and compute units, a kernel on a
/// sub-device, and an unknown partition type's error.
#[test]
fn sub_devices_remoted_equal_native() {
    check_sample(
        "sub_devices",
        &[
            "equally: 0",
            "sub-device 0: parent is the root: yes",
            "by counts 1,1: 0, 2 sub-devices",
            "kernel on a sub-device: sum 64",
            "unknown partition type: -30",
        ],
    );
}

/// Enqueue calls with invalid arguments (`samples/opencl/enqueue_errors.c`):
/// work dimensions out of range and event wait lists whose pointer and
/// count disagree get their error at once, asynchronous ones too
/// (`require` in the spec), as does a launch with a kernel argument not set
/// (the guest library records which are), as natively.
#[test]
fn enqueue_errors_remoted_equal_native() {
    check_sample(
        "enqueue_errors",
        &[
            "ndrange, work_dim 0: -53",
            "write, wait list NULL with 1: -57",
            "marker, wait list NULL with 1: -57",
            "ndrange, no argument set: -52",
            "ndrange, one of two set: -52",
            "ndrange, both set: 0",
            "ndrange of a clone: 0",
            "valid ndrange: 0",
            "finish: 0",
        ],
    );
}

/// The error matrix (`samples/opencl/error_matrix.c`): over a hundred
/// invalid calls across the API, about half of them enqueue calls
/// (asynchronous ones included: the guest library sends a call that may be
/// invalid synchronously, so it returns the driver's own error), each with
/// the code native returns; valid work queued among them still runs.
#[test]
fn error_matrix_remoted_equal_native() {
    check_sample(
        "error_matrix",
        &[
            "enqueue  copy, overlapping",
            "enqueue  ndrange, kernel of another context",
            "valid kernel after the invalid calls: 256 of 256 written",
        ],
    );
    // The counts the sample prints: enough cases, and invalid ones.
    let exe = common::build_sample("error_matrix");
    let native = Command::new(&exe).output().expect("run error_matrix");
    let _ = std::fs::remove_file(&exe);
    let text = common::text(&native.stdout);
    let counts = text
        .lines()
        .find_map(|l| l.strip_prefix("cases: "))
        .expect("the counts line");
    let n: Vec<u32> = counts
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let (cases, enqueues, successes) = (n[0], n[1], n[2]);
    assert!(cases >= 60, "{cases} cases:\n{text}");
    assert!(enqueues >= 30, "{enqueues} enqueue cases:\n{text}");
    assert!(
        successes * 10 <= cases,
        "{successes} of {cases} cases succeed natively:\n{text}"
    );
}

/// The info matrix (`samples/opencl/info_matrix.c`): every kind of memory
/// object, a program and kernels, and every parameter of the memory, image,
/// pipe, program, build, kernel, kernel argument, work-group, event and
/// profiling queries asked of each: remoted prints what native prints,
/// handles named as the application's own objects, host pointers as the
/// application's.
#[test]
fn info_matrix_remoted_equal_native() {
    check_sample(
        "info_matrix",
        &[
            "CL_MEM_HOST_PTR                              rc=0 size=8 host+0",
            "CL_MEM_ASSOCIATED_MEMOBJECT                  rc=0 size=8 buffer",
            "CL_PROGRAM_DEVICES                           rc=0 size=8 device",
            "CL_PROGRAM_BINARIES                          rc=0 filled=yes",
            "CL_KERNEL_PROGRAM                            rc=0 size=8 program",
            "CL_KERNEL_COMPILE_WORK_GROUP_SIZE            rc=0 size=24 8 1 1",
            "CL_EVENT_COMMAND_QUEUE                       rc=0 size=8 queue",
            "CL_PROFILING_COMMAND_END                     rc=0 size=8 in order",
            "kernel result: 2.25 2.25",
        ],
    );
}

/// Images with host data (`samples/opencl/image_host_data.c`): created
/// with `CL_MEM_COPY_HOST_PTR` and `CL_MEM_USE_HOST_PTR`, read back with a
/// row pitch of 0, flags and host pointer as native reports them.
#[test]
fn image_host_data_remoted_equals_native() {
    check_sample(
        "image_host_data",
        &[
            "create copy: 0",
            "read: 0 same: 1",
            "host_ptr app",
            "without flag: -37",
        ],
    );
}
