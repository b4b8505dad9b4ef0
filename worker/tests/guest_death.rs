//! A guest process killed (SIGKILL) in the middle of its calls: the worker
//! takes it for dead once its heartbeat has stopped for `--stale-after`
//! seconds, reclaims its channel, destroys every object it owned (the
//! buffers in the region's heap give their storage back), and goes on
//! serving other guests.
//!
//! The guests are this test binary again, in a guest role
//! (`common::is_guest_half`), calling the guest library loaded into the
//! process; the worker finds their pid in the channel they claimed and logs
//! it as `owner`.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use ava_worker::opencl::{
    CL_MEM_HOST_NO_ACCESS, CL_MEM_HOST_WRITE_ONLY, CL_MEM_READ_ONLY, CL_MEM_READ_WRITE,
};
use common::{Cl, ClId, ClSetup, Spawned};
use nix::sys::signal::{Signal, kill};

/// The guest library's `$f`, which it must export.
macro_rules! cl {
    ($g:expr, $f:ident) => {
        $g.api.$f.expect(stringify!($f))
    };
}

/// The worker's line on the heap after a guest's cleanup.
const CLEANUP_LINE: &str = "buffer heap after the guest's cleanup";
/// Seconds without a heartbeat after which the worker takes a guest for dead.
const STALE_AFTER: &str = "1";
/// Bytes of each buffer of the looping guest.
const BUF: usize = 1 << 20;
/// Buffers the looping guest creates in the heap (plain read-write ones).
const HEAP_BUFFERS: usize = 3;
/// Buffers it creates with host-access flags, which the worker leaves in
/// the device's own memory.
const DEVICE_BUFFERS: usize = 2;
/// Every handle the looping guest holds: its platform and device (it is the
/// region's first guest, so it registers them), context, queue, buffers,
/// program and kernel. It creates no events.
const OBJECTS: usize = 4 + HEAP_BUFFERS + DEVICE_BUFFERS + 2;

const KERNEL: &str = "__kernel void add(__global int* a, __global const int* b) {\n\
                      size_t i = get_global_id(0);\n\
                      a[i] += b[i];\n\
                      }\n";

/// A child that plays a guest: the guest half of `test`, its stderr in a
/// file (returned) for the failure messages.
fn start_guest(
    stack: &common::Stack,
    test: &str,
    part: &str,
    stdin: bool,
) -> (Spawned, std::path::PathBuf) {
    let err = std::env::temp_dir().join(format!(
        "ava-guest-death-{part}-{}.stderr",
        std::process::id()
    ));
    let mut c = stack.guest_half_command(test);
    c.env("AVA_TEST_PART", part)
        .stderr(std::fs::File::create(&err).expect("guest stderr file"));
    if stdin {
        c.stdin(Stdio::piped());
    }
    (Spawned::start(c), err)
}

/// The value of `AVA_TEST_PART` in a guest half.
fn part() -> String {
    std::env::var("AVA_TEST_PART").unwrap_or_default()
}

const KILLED_MID_LOOP: &str = "a_guest_killed_in_the_middle_of_calls_leaves_nothing_behind";

#[test]
fn a_guest_killed_in_the_middle_of_calls_leaves_nothing_behind() {
    if common::is_guest_half() {
        looping_guest();
        return;
    }
    let mut stack = common::Stack::start_with("guest-death", &["--stale-after", STALE_AFTER]);
    let (mut guest, guest_err) = start_guest(&stack, KILLED_MID_LOOP, "looping", false);
    let why = |stack: &common::Stack, g: &mut Spawned| {
        format!(
            "guest stdout:\n{}\nguest stderr:\n{}\nworker log:\n{}",
            g.printed(),
            common::tail(&std::fs::read_to_string(&guest_err).unwrap_or_default(), 30),
            common::tail(&stack.log(), 40)
        )
    };
    guest.wait_for_line("ready", Duration::from_secs(180));
    // Well into the loop: calls of every kind have gone back and forth.
    guest.wait_for_line("iteration 20", Duration::from_secs(180));
    let pid = guest.pid();
    let owner = format!("owner={pid}");
    let log = stack.log();
    assert_eq!(
        log.matches("buffer placed in the heap").count(),
        HEAP_BUFFERS,
        "{}",
        why(&stack, &mut guest)
    );
    assert_eq!(
        log.matches("buffer in the device's own memory").count(),
        DEVICE_BUFFERS,
        "{}",
        why(&stack, &mut guest)
    );
    assert!(!log.contains(&owner), "{}", why(&stack, &mut guest));

    kill(pid, Signal::SIGKILL).expect("kill the guest");
    let status = guest.wait_exit(Duration::from_secs(30)).expect("killed");
    assert!(!status.success(), "{status}");

    let released = stack.wait_for_log_line(&["guest released its channel", &owner]);
    let cleanup = stack.wait_for_log_line(&[CLEANUP_LINE, &owner]);
    let log = stack.log();
    assert!(log.contains("guest stopped beating"), "{log}");
    // Everything it owned was destroyed, and nothing it sent was malformed
    // (a killed guest leaves no half-written message: a record is published
    // whole or not at all).
    assert_eq!(
        common::log_field(&released, "freed"),
        Some(OBJECTS.to_string().as_str()),
        "{released}\n{}",
        common::tail(&log, 30)
    );
    assert_eq!(
        common::log_field(&released, "rejected"),
        Some("0"),
        "{released}"
    );
    let calls: u64 = common::log_field(&released, "calls")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!(calls > 20, "{released}");
    // The heap buffers' storage went back when the driver destroyed them.
    assert_eq!(
        common::log_field(&cleanup, "in_use"),
        Some("0"),
        "{cleanup}"
    );

    // The worker serves the next guest as if nothing had happened.
    common::assert_clinfo_list_same(&mut stack);
    assert!(stack.alive(), "the worker survived");
    let _ = std::fs::remove_file(&guest_err);
}

/// The guest half: a context, a queue, buffers in the heap and in device
/// memory, a program and a kernel; then calls in a loop until it is killed
/// (asynchronous writes through the arena, copies, kernel launches, reads
/// made in place from the heap).
fn looping_guest() {
    let g = Cl::guest();
    let s = ClSetup::new(&g);
    let null = std::ptr::null_mut::<std::ffi::c_void>();
    let mut err = 0;
    // SAFETY: OpenCL calls with live locals, sizes that match them, and
    // handles the guest library returned.
    unsafe {
        let mut create = |flags| {
            let b = cl!(g, clCreateBuffer)(s.context, flags, BUF, null, &mut err);
            assert_eq!(err, 0, "clCreateBuffer({flags:#x})");
            b
        };
        let heap: Vec<ClId> = (0..HEAP_BUFFERS)
            .map(|_| create(CL_MEM_READ_WRITE))
            .collect();
        let dev = create(CL_MEM_READ_WRITE | CL_MEM_HOST_NO_ACCESS);
        let dev_w = create(CL_MEM_READ_ONLY | CL_MEM_HOST_WRITE_ONLY);
        let src = std::ffi::CString::new(KERNEL).unwrap();
        let mut p = src.as_ptr();
        let program =
            cl!(g, clCreateProgramWithSource)(s.context, 1, &mut p, std::ptr::null(), &mut err);
        assert_eq!(err, 0);
        assert_eq!(
            cl!(g, clBuildProgram)(program, 1, &s.device, std::ptr::null(), None, null),
            0
        );
        let name = std::ffi::CString::new("add").unwrap();
        let k = cl!(g, clCreateKernel)(program, name.as_ptr(), &mut err);
        assert_eq!(err, 0);
        println!("ready objects={OBJECTS}");
        let data: Vec<i32> = (0..(64 << 10) / 4).collect();
        let mut out = vec![0i32; 1024];
        let global = BUF / 4;
        for i in 0u64.. {
            let h = heap[i as usize % HEAP_BUFFERS];
            assert_eq!(
                cl!(g, clEnqueueWriteBuffer)(
                    s.queue,
                    dev_w,
                    0,
                    0,
                    data.len() * 4,
                    data.as_ptr().cast(),
                    0,
                    std::ptr::null(),
                    std::ptr::null_mut()
                ),
                0
            );
            assert_eq!(
                cl!(g, clEnqueueCopyBuffer)(
                    s.queue,
                    dev_w,
                    dev,
                    0,
                    0,
                    BUF,
                    0,
                    std::ptr::null(),
                    std::ptr::null_mut()
                ),
                0
            );
            assert_eq!(
                cl!(g, clSetKernelArg)(k, 0, 8, (&h as *const ClId).cast()),
                0
            );
            assert_eq!(
                cl!(g, clSetKernelArg)(k, 1, 8, (&dev as *const ClId).cast()),
                0
            );
            assert_eq!(
                cl!(g, clEnqueueNDRangeKernel)(
                    s.queue,
                    k,
                    1,
                    std::ptr::null(),
                    &global,
                    std::ptr::null(),
                    0,
                    std::ptr::null(),
                    std::ptr::null_mut()
                ),
                0
            );
            assert_eq!(
                cl!(g, clEnqueueReadBuffer)(
                    s.queue,
                    h,
                    1,
                    0,
                    out.len() * 4,
                    out.as_mut_ptr().cast(),
                    0,
                    std::ptr::null(),
                    std::ptr::null_mut()
                ),
                0
            );
            println!("iteration {i}");
        }
    }
}

const OTHER_GUEST: &str = "a_dead_guests_cleanup_leaves_other_guests_handles_alone";

/// Two guests of one region (one VM) get their platform and device from
/// the worker; the first is killed, and once the worker has cleaned up
/// after it the second goes on with the handles it holds. A guest can hurt
/// nobody but itself: every call must still succeed.
///
/// (When the region's handle table registered a host object once, for the
/// first process that received it, the second guest got the first one's
/// platform and device ids, and the first one's cleanup took them away:
/// `CL_INVALID_DEVICE` and `CL_INVALID_PLATFORM`. Each process now has ids
/// of its own, `HandleTable`.)
#[test]
fn a_dead_guests_cleanup_leaves_other_guests_handles_alone() {
    if common::is_guest_half() {
        match part().as_str() {
            "first" => first_guest(),
            "second" => second_guest(),
            p => panic!("unknown part {p:?}"),
        }
        return;
    }
    let stack = common::Stack::start_with("guest-death-other", &["--stale-after", STALE_AFTER]);
    let (mut first, first_err) = start_guest(&stack, OTHER_GUEST, "first", false);
    first.wait_for_line("ready", Duration::from_secs(120));
    let (mut second, second_err) = start_guest(&stack, OTHER_GUEST, "second", true);
    second.wait_for_line("ready", Duration::from_secs(120));

    let owner = format!("owner={}", first.pid());
    kill(first.pid(), Signal::SIGKILL).expect("kill the first guest");
    first.wait_exit(Duration::from_secs(30)).expect("killed");
    let released = stack.wait_for_log_line(&["guest released its channel", &owner]);
    stack.wait_for_log_line(&[CLEANUP_LINE, &owner]);

    writeln!(second.child.stdin.as_mut().expect("piped stdin"), "go").expect("tell the guest");
    let status = second
        .wait_exit(Duration::from_secs(120))
        .expect("the second guest finishes");
    assert!(
        status.success(),
        "the second guest failed ({status}) after the first one's cleanup ({released}):\n\
         first guest stdout:\n{}\nsecond guest stdout:\n{}\nsecond guest stderr:\n{}\nworker log:\n{}",
        first.printed(),
        second.printed(),
        common::tail(
            &std::fs::read_to_string(&second_err).unwrap_or_default(),
            30
        ),
        common::tail(&stack.log(), 30)
    );
    let _ = std::fs::remove_file(&first_err);
    let _ = std::fs::remove_file(&second_err);
}

/// The first guest: its platform, device, context and queue, then calls
/// until it is killed.
fn first_guest() {
    let g = Cl::guest();
    let s = ClSetup::new(&g);
    println!(
        "ready platform={:#x} device={:#x}",
        s.platform as u64, s.device as u64
    );
    let mut units = 0u32;
    loop {
        // SAFETY: a live device handle and a u32 for CL_DEVICE_MAX_COMPUTE_UNITS.
        let rc = unsafe {
            cl!(g, clGetDeviceInfo)(
                s.device,
                0x1002,
                4,
                (&mut units as *mut u32).cast(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0);
        // SAFETY: a live queue.
        assert_eq!(unsafe { cl!(g, clFinish)(s.queue) }, 0);
    }
}

/// The second guest: the same setup; then, once told that the first guest
/// is gone, uses every handle it holds. Prints each call's result and fails
/// if any call failed.
fn second_guest() {
    let g = Cl::guest();
    let s = ClSetup::new(&g);
    println!(
        "ready platform={:#x} device={:#x}",
        s.platform as u64, s.device as u64
    );
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("wait for go");
    let mut results: Vec<(&str, i32)> = Vec::new();
    let null = std::ptr::null_mut::<std::ffi::c_void>();
    // SAFETY: OpenCL calls with live locals and sizes that match them.
    unsafe {
        let mut units = 0u32;
        results.push((
            "clGetDeviceInfo(device)",
            cl!(g, clGetDeviceInfo)(
                s.device,
                0x1002,
                4,
                (&mut units as *mut u32).cast(),
                null.cast(),
            ),
        ));
        let mut name = [0u8; 256];
        results.push((
            "clGetPlatformInfo(platform)",
            cl!(g, clGetPlatformInfo)(
                s.platform,
                0x0902,
                256,
                name.as_mut_ptr().cast(),
                null.cast(),
            ),
        ));
        let mut err = 0;
        let ctx = cl!(g, clCreateContext)(std::ptr::null(), 1, &s.device, None, null, &mut err);
        results.push(("clCreateContext(device)", err));
        if !ctx.is_null() {
            results.push(("clReleaseContext(new)", cl!(g, clReleaseContext)(ctx)));
        }
        // Its own objects.
        let b = cl!(g, clCreateBuffer)(s.context, CL_MEM_READ_WRITE, 4096, null, &mut err);
        results.push(("clCreateBuffer(own context)", err));
        let data = [7u8; 4096];
        let mut back = [0u8; 4096];
        results.push((
            "clEnqueueWriteBuffer(own queue)",
            cl!(g, clEnqueueWriteBuffer)(
                s.queue,
                b,
                1,
                0,
                4096,
                data.as_ptr().cast(),
                0,
                std::ptr::null(),
                std::ptr::null_mut(),
            ),
        ));
        results.push((
            "clEnqueueReadBuffer(own queue)",
            cl!(g, clEnqueueReadBuffer)(
                s.queue,
                b,
                1,
                0,
                4096,
                back.as_mut_ptr().cast(),
                0,
                std::ptr::null(),
                std::ptr::null_mut(),
            ),
        ));
        assert_eq!(back, data);
    }
    for (what, rc) in &results {
        println!("{what} = {rc}");
    }
    let failed: Vec<_> = results.iter().filter(|(_, rc)| *rc != 0).collect();
    assert!(
        failed.is_empty(),
        "calls failed after another guest's cleanup: {failed:?}"
    );
}

const GATED: &str = "a_guest_killed_while_its_kernel_waits_on_a_user_event_is_cleaned_up";

/// A guest killed while a kernel it enqueued waits on a user event that it
/// never completed (its `clSetUserEventStatus` would have come next). Its
/// own process would have ended with it natively; in the worker, releasing
/// its queue waits for that kernel (PoCL's `clReleaseCommandQueue` finishes
/// the queue first), so the cleanup first fails the user events the guest
/// left pending, as the specification allows (a negative status), and the
/// commands that wait on them end with an error instead of never.
///
/// (Before: the cleanup blocked forever in the guest's channel thread, the
/// channel stayed claimed, and the soak saw guests of that VM hang.)
#[test]
fn a_guest_killed_while_its_kernel_waits_on_a_user_event_is_cleaned_up() {
    if common::is_guest_half() {
        gated_guest();
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let mut stack = common::Stack::start_with(
        "guest-death-gate",
        &["--stale-after", STALE_AFTER, "--metrics", &metrics],
    );
    let (mut guest, guest_err) = start_guest(&stack, GATED, "gated", false);
    let ready = guest.wait_for_line("ready", Duration::from_secs(180));
    assert!(ready.contains("pending=yes"), "{ready}");
    let owner = format!("owner={}", guest.pid());
    kill(guest.pid(), Signal::SIGKILL).expect("kill the guest");
    guest.wait_exit(Duration::from_secs(30)).expect("killed");
    let released = stack.wait_for_log_line(&["guest released its channel", &owner]);
    // The destructors ran to the end: the heap's report comes after them.
    let cleanup = stack.wait_for_log_line(&[CLEANUP_LINE, &owner]);
    let log = stack.log();
    assert!(
        log.contains("failing a user event the guest left pending"),
        "{}",
        common::tail(&log, 30)
    );
    assert_eq!(
        common::log_field(&cleanup, "in_use"),
        Some("0"),
        "{released}\n{cleanup}"
    );
    // The kernel failed without running (PoCL calls none of its event's
    // callbacks): it is no longer counted in flight against the VM.
    let in_flight = ava_worker::metrics::by_vm(
        &ava_worker::metrics::fetch(&metrics).expect("metrics"),
        "ava_vm_kernels_in_flight",
    );
    assert!(
        in_flight.iter().all(|(_, n)| *n == 0.0),
        "kernels in flight after the cleanup: {in_flight:?}"
    );
    // The VM's next guest is served.
    common::assert_clinfo_list_same(&mut stack);
    assert!(stack.alive(), "the worker survived");
    let _ = std::fs::remove_file(&guest_err);
}

/// The gated guest: a kernel enqueued behind a user event, flushed, and
/// still waiting when the guest is killed.
fn gated_guest() {
    let g = Cl::guest();
    let s = ClSetup::new(&g);
    let null = std::ptr::null_mut::<std::ffi::c_void>();
    let mut err = 0;
    // SAFETY: OpenCL calls with live locals, sizes that match them, and
    // handles the guest library returned.
    unsafe {
        let buf = cl!(g, clCreateBuffer)(s.context, CL_MEM_READ_WRITE, BUF, null, &mut err);
        assert_eq!(err, 0);
        let src = std::ffi::CString::new(KERNEL).unwrap();
        let mut p = src.as_ptr();
        let program =
            cl!(g, clCreateProgramWithSource)(s.context, 1, &mut p, std::ptr::null(), &mut err);
        assert_eq!(err, 0);
        assert_eq!(
            cl!(g, clBuildProgram)(program, 1, &s.device, std::ptr::null(), None, null),
            0
        );
        let name = std::ffi::CString::new("add").unwrap();
        let k = cl!(g, clCreateKernel)(program, name.as_ptr(), &mut err);
        assert_eq!(err, 0);
        for i in 0..2u32 {
            assert_eq!(
                cl!(g, clSetKernelArg)(k, i, 8, (&buf as *const ClId).cast()),
                0
            );
        }
        let gate = cl!(g, clCreateUserEvent)(s.context, &mut err);
        assert_eq!(err, 0);
        let global = BUF / 4;
        let mut kev: ClId = std::ptr::null_mut();
        assert_eq!(
            cl!(g, clEnqueueNDRangeKernel)(
                s.queue,
                k,
                1,
                std::ptr::null(),
                &global,
                std::ptr::null(),
                1,
                &gate,
                &mut kev
            ),
            0
        );
        assert_eq!(cl!(g, clFlush)(s.queue), 0);
        let mut status = 0i32;
        assert_eq!(
            cl!(g, clGetEventInfo)(
                kev,
                0x11D3, // CL_EVENT_COMMAND_EXECUTION_STATUS
                4,
                (&mut status as *mut i32).cast(),
                std::ptr::null_mut()
            ),
            0
        );
        println!("ready pending={}", if status > 0 { "yes" } else { "no" });
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}
