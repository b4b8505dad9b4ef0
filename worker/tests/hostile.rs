//! Bad input: invalid handles, wrong sizes and NULLs get the OpenCL error a
//! native implementation gives, and a hostile guest that sends garbage or
//! scribbles over its channel gets errors (or is dropped) while the worker
//! keeps serving everybody else.

mod common;

use std::ffi::c_void;
use std::process::Command;
use std::time::Duration;

use ava_worker::opencl::{
    Api, CL_INVALID_COMMAND_QUEUE, CL_INVALID_CONTEXT, CL_INVALID_DEVICE, CL_INVALID_MEM_OBJECT,
    CL_INVALID_PLATFORM, CL_INVALID_VALUE,
};
use remoting::wire::{Decoder, Encoder, FLAG_SYNC, Header, MsgKind, Status};
use transport::{Region, WaitStrategy};

type Id = *mut c_void;

/// The id on the wire of a handle the guest library returned: the library
/// is also an ICD, so the application holds an object `{ dispatch, id }`.
fn wire_id(h: Id) -> u64 {
    // SAFETY: `h` is a live handle the guest library returned: an object
    // of two words.
    unsafe { *(h as *const u64).add(1) }
}

/// The remoted entry points, loaded from the guest library in this process
/// into the function table generated from the same specification as the
/// worker's (`ava_worker::opencl::Api`).
struct Guest {
    api: Api,
    _lib: libloading::Library,
}

impl Guest {
    fn load() -> Guest {
        // SAFETY: loading the guest library runs no initialisers of note.
        let lib = unsafe { libloading::Library::new(common::guestlib()) }.expect("guest library");
        Guest {
            api: Api::load(&lib),
            _lib: lib,
        }
    }
}

/// The guest library's `$f`, which it must export.
macro_rules! cl {
    ($g:expr, $f:ident) => {
        $g.api.$f.expect(stringify!($f))
    };
}

fn call(func: u32, args: impl FnOnce(&mut Encoder)) -> Vec<u8> {
    let mut e = Encoder::with_header(
        Vec::new(),
        Header {
            kind: MsgKind::Call,
            flags: FLAG_SYNC,
            func,
            call_id: 7,
        },
    );
    args(&mut e);
    e.into_inner()
}

/// A channel of `region` opened for OpenCL (its hello accepted), on which
/// the test then sends what the guest library never would.
fn claim_opencl(region: &Region) -> transport::GuestChannel {
    let mut ch = region.claim().unwrap();
    let wait = WaitStrategy::BALANCED;
    let timeout = Some(Duration::from_secs(30));
    ch.tx
        .send(
            &remoting::hello_message(&ava_worker::opencl::API),
            &wait,
            timeout,
        )
        .unwrap();
    let mut reply = Vec::new();
    ch.rx.recv(&mut reply, &wait, timeout).unwrap();
    assert_eq!(Decoder::new(&reply).unwrap().0.flags, Status::Ok as u32);
    ch
}

/// The region of the guest half of a test (see `common::is_guest_half`).
fn guest_region() -> std::path::PathBuf {
    std::env::var_os("AVA_REGION")
        .expect("the guest half runs with AVA_REGION")
        .into()
}

#[test]
fn invalid_handles_sizes_and_nulls_get_opencl_errors() {
    if common::is_guest_half() {
        invalid_handles_guest_half();
        return;
    }
    let mut stack = common::Stack::start("badinput");
    stack.run_guest_half("invalid_handles_sizes_and_nulls_get_opencl_errors");
    assert!(stack.alive(), "the worker survived");
    let log = stack.log();
    assert!(
        log.lines()
            .any(|l| l.contains("clSetKernelArg") && l.contains("call rejected")),
        "the guard refused the wild kernel argument:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("clEnqueueSVMMemFill") && l.contains("call rejected")),
        "the guard refused the wild SVM fill:\n{log}"
    );
}

/// The guest side of `invalid_handles_sizes_and_nulls_get_opencl_errors`,
/// in a process of its own: the guest library finds the region in the
/// environment it was started with.
fn invalid_handles_guest_half() {
    let g = Guest::load();
    let null = std::ptr::null_mut::<c_void>();
    let bogus = 0xA7A0_0000_0BAD_F00D_u64 as usize as Id;
    let stale = 0x1234_5678_usize as Id;
    // SAFETY: the OpenCL entry points get live locals of the sizes they write, NULL where the API accepts it, and handles as opaque ids (the guest library never dereferences them).
    unsafe {
        let mut platform: Id = null;
        assert_eq!(
            cl!(g, clGetPlatformIDs)(1, &mut platform, std::ptr::null_mut()),
            0
        );
        let mut device: Id = null;
        assert_eq!(
            cl!(g, clGetDeviceIDs)(platform, 0xFFFF_FFFF, 1, &mut device, std::ptr::null_mut()),
            0
        );
        // Handles that are not this guest's: never dereferenced on the host.
        let mut units = 0u32;
        for h in [bogus, stale] {
            assert_eq!(
                cl!(g, clGetDeviceInfo)(
                    h,
                    0x1002,
                    4,
                    (&mut units as *mut u32).cast(),
                    std::ptr::null_mut()
                ),
                CL_INVALID_DEVICE
            );
            assert_eq!(cl!(g, clReleaseMemObject)(h), CL_INVALID_MEM_OBJECT);
            assert_eq!(cl!(g, clFinish)(h), CL_INVALID_COMMAND_QUEUE);
            assert_eq!(
                cl!(g, clGetPlatformInfo)(h, 0x0902, 0, null, std::ptr::null_mut()),
                CL_INVALID_PLATFORM
            );
        }
        // A handle of the wrong type (a device where a context is expected).
        let mut err = 0;
        let b = cl!(g, clCreateBuffer)(device, 1, 64, null, &mut err);
        assert!(b.is_null());
        assert_eq!(err, CL_INVALID_CONTEXT);
        // A released object is gone.
        let ctx = cl!(g, clCreateContext)(std::ptr::null(), 1, &device, None, null, &mut err);
        assert_eq!(err, 0);
        let buf = cl!(g, clCreateBuffer)(ctx, 1, 64, null, &mut err);
        assert_eq!(err, 0);
        assert_eq!(cl!(g, clReleaseMemObject)(buf), 0);
        assert_eq!(cl!(g, clReleaseMemObject)(buf), CL_INVALID_MEM_OBJECT);
        // Sizes: a read beyond the buffer, as natively, is CL_INVALID_VALUE.
        let buf = cl!(g, clCreateBuffer)(ctx, 1, 64, null, &mut err);
        let q = cl!(g, clCreateCommandQueue)(ctx, device, 0, &mut err);
        assert_eq!(err, 0);
        let mut host = [0u8; 128];
        assert_eq!(
            cl!(g, clEnqueueReadBuffer)(
                q,
                buf,
                1,
                0,
                128,
                host.as_mut_ptr().cast(),
                0,
                std::ptr::null(),
                std::ptr::null_mut()
            ),
            CL_INVALID_VALUE
        );
        // NULL where a pointer is required.
        assert_eq!(
            cl!(g, clEnqueueReadBuffer)(
                q,
                buf,
                1,
                0,
                64,
                null,
                0,
                std::ptr::null(),
                std::ptr::null_mut()
            ),
            CL_INVALID_VALUE
        );
        assert_eq!(
            cl!(g, clGetPlatformIDs)(0, std::ptr::null_mut(), std::ptr::null_mut()),
            CL_INVALID_VALUE
        );
        // A size query with a too-small buffer.
        let mut small = [0u8; 2];
        assert_eq!(
            cl!(g, clGetPlatformInfo)(
                platform,
                0x0902,
                2,
                small.as_mut_ptr().cast(),
                std::ptr::null_mut()
            ),
            CL_INVALID_VALUE
        );

        // A kernel's buffer argument given bytes that are no live buffer:
        // refused with the error an invalid buffer gets natively (the driver
        // would dereference them); the launch then finds the argument unset
        // and fails at once, as natively, and the worker goes on.
        let src = std::ffi::CString::new("__kernel void k(__global int* a) { a[0] = 1; }").unwrap();
        let mut p = src.as_ptr();
        let program = cl!(g, clCreateProgramWithSource)(ctx, 1, &mut p, std::ptr::null(), &mut err);
        assert_eq!(err, 0);
        assert_eq!(
            cl!(g, clBuildProgram)(program, 1, &device, std::ptr::null(), None, null),
            0
        );
        let name = std::ffi::CString::new("k").unwrap();
        let k = cl!(g, clCreateKernel)(program, name.as_ptr(), &mut err);
        assert_eq!(err, 0);
        let wild: u64 = 0x0000_7fff_dead_b000;
        assert_eq!(
            cl!(g, clSetKernelArg)(k, 0, 8, (&wild as *const u64).cast()),
            CL_INVALID_MEM_OBJECT
        );
        let one = 1usize;
        assert_eq!(
            cl!(g, clEnqueueNDRangeKernel)(
                q,
                k,
                1,
                std::ptr::null(),
                &one,
                std::ptr::null(),
                0,
                std::ptr::null(),
                std::ptr::null_mut()
            ),
            ava_worker::opencl::CL_INVALID_KERNEL_ARGS
        );
        assert_eq!(cl!(g, clFinish)(q), 0);
        // SVM pointers given to the worker must lie inside an SVM
        // allocation of this region: the device follows them in the
        // worker's process. Wild ones, ranges past an allocation's end and
        // freed allocations are refused before any driver sees them.
        let wild_ptr = wild as usize as *mut c_void;
        assert_eq!(
            cl!(g, clSetKernelArgSVMPointer)(k, 0, wild_ptr),
            CL_INVALID_VALUE
        );
        let wild_list = [wild_ptr];
        assert_eq!(
            cl!(g, clSetKernelExecInfo)(k, 0x11B6, 8, wild_list.as_ptr().cast()),
            CL_INVALID_VALUE
        );
        let pattern = 0u32;
        let fill = |p: *mut c_void, size: usize| {
            cl!(g, clEnqueueSVMMemFill)(
                q,
                p,
                (&pattern as *const u32).cast(),
                4,
                size,
                0,
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(fill(wild_ptr, 64), CL_INVALID_VALUE);
        let svm = cl!(g, clSVMAlloc)(ctx, 1, 4096, 0);
        assert!(!svm.is_null(), "an SVM allocation in the heap");
        assert_eq!(fill(svm.cast::<u8>().add(4092).cast(), 8), CL_INVALID_VALUE);
        assert_eq!(fill(svm, 4096), 0);
        assert_eq!(cl!(g, clSetKernelArgSVMPointer)(k, 0, svm), 0);
        assert_eq!(cl!(g, clFinish)(q), 0);
        cl!(g, clSVMFree)(ctx, svm);
        assert_eq!(
            cl!(g, clSetKernelArgSVMPointer)(k, 0, svm),
            CL_INVALID_VALUE
        );
        // A live buffer works.
        assert_eq!(
            cl!(g, clSetKernelArg)(k, 0, 8, (&buf as *const Id).cast()),
            0
        );
        assert_eq!(
            cl!(g, clEnqueueNDRangeKernel)(
                q,
                k,
                1,
                std::ptr::null(),
                &one,
                std::ptr::null(),
                0,
                std::ptr::null(),
                std::ptr::null_mut()
            ),
            0
        );
        assert_eq!(cl!(g, clFinish)(q), 0);
        let mut out = [0u8; 4];
        assert_eq!(
            cl!(g, clEnqueueReadBuffer)(
                q,
                buf,
                1,
                0,
                4,
                out.as_mut_ptr().cast(),
                0,
                std::ptr::null(),
                std::ptr::null_mut()
            ),
            0
        );
        assert_eq!(i32::from_le_bytes(out), 1);
        // The guest library opens its region once per process: the heap
        // checks use this test's worker and objects.
        heap_access_is_checked_and_names_only_the_buffer(&g, ctx, q);
    }
}

#[test]
fn a_hostile_guest_hurts_only_itself() {
    let mut stack = common::Stack::start("hostile");
    let region = Region::open(&stack.region).unwrap();
    let wait = WaitStrategy::BALANCED;
    let timeout = Some(Duration::from_secs(10));
    let mut evil = claim_opencl(&region);
    let mut reply = Vec::new();

    // 1. Malformed commands, each answered with an error to this guest.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown function", call(60_000, |_| {})),
        ("truncated arguments", call(0, |e| e.u32(1))),
        (
            "trailing garbage",
            call(0, |e| {
                e.u64(0);
                e.u8(0);
                e.u8(0);
                e.u64(99);
            }),
        ),
        (
            "arena range out of bounds",
            call(0, |e| {
                e.u64(1);
                e.u8(remoting::wire::BLOB_ARENA);
                e.u64(u64::MAX - 8);
                e.u64(64);
                e.u8(0);
            }),
        ),
        (
            "inline output too large",
            call(0, |e| {
                e.u64(1);
                e.u8(remoting::wire::BLOB_INLINE);
                e.u64(u64::MAX);
                e.u8(0);
            }),
        ),
    ];
    for (what, msg) in &cases {
        evil.tx.send(msg, &wait, timeout).unwrap();
        evil.rx
            .recv(&mut reply, &wait, timeout)
            .unwrap_or_else(|e| panic!("{what}: no reply: {e}"));
        let (h, _) = Decoder::new(&reply).unwrap();
        assert_eq!(h.kind, MsgKind::Reply, "{what}");
        assert_eq!(h.flags, Status::Protocol as u32, "{what}");
    }
    // Pure garbage that is not even a message header: an asynchronous error.
    evil.tx.send(&[0xff; 7], &wait, timeout).unwrap();
    evil.rx.recv(&mut reply, &wait, timeout).unwrap();
    assert_eq!(Decoder::new(&reply).unwrap().0.kind, MsgKind::AsyncError);

    // Another guest is served meanwhile and afterwards.
    let ok = common::run_capture(
        {
            let mut c = stack.remote("clinfo");
            c.arg("-l");
            c
        },
        Duration::from_secs(60),
    );
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("Platform #0"));

    // 2. Scribbling over its own channel: the worker drops this channel only.
    // A record header whose check fails, where the worker reads next.
    let layout = region.header().channel(evil.index());
    let shm = transport::Shm::map(&stack.region, None).unwrap();
    let head = shm
        .atomic_u64(layout.base + transport::layout::CH_CMD_HEAD)
        .load(std::sync::atomic::Ordering::Acquire) as usize;
    let at = layout.cmd_data + (head & (layout.cmd_size - 1));
    shm.write(at, &[5, 0, 0, 0, 0x5a, 0x5a, 0x5a, 0x5a]);
    // Written without ringing the channel's bell: the worker, asleep on it,
    // finds the record at its next look (within its sleep's timeout).
    let t = std::time::Instant::now();
    while !stack.log().contains("dropping channel") {
        assert!(t.elapsed() < Duration::from_secs(5), "{}", stack.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(stack.alive(), "the worker survived");
    common::assert_clinfo_list_same(&mut stack);
    drop(evil);
}

/// Sends `avaBufferAccess(queue, buffer, offset, size, &out)` as raw bytes
/// on `ch`; returns the call's status and, when it succeeded, its return
/// value and heap offset.
fn raw_access(
    ch: &mut transport::GuestChannel,
    queue: u64,
    buffer: u64,
    offset: u64,
    size: u64,
) -> (u32, Option<(i32, u64)>) {
    let wait = WaitStrategy::BALANCED;
    let timeout = Some(Duration::from_secs(10));
    let msg = call(ava_worker::opencl::func::avaBufferAccess, |e| {
        e.u64(queue);
        e.u64(buffer);
        e.u64(offset);
        e.u64(size);
        e.u8(remoting::wire::BLOB_INLINE);
        e.u64(8);
    });
    ch.tx.send(&msg, &wait, timeout).unwrap();
    let mut reply = Vec::new();
    ch.rx.recv(&mut reply, &wait, timeout).unwrap();
    let (h, mut d) = Decoder::new(&reply).unwrap();
    if h.flags != Status::Ok as u32 {
        return (h.flags, None);
    }
    let at = match d.blob().unwrap() {
        remoting::wire::Blob::Inline(b) => u64::from_le_bytes(b.try_into().unwrap()),
        // A call that fails leaves its outputs untouched: none comes back.
        remoting::wire::Blob::Null => 0,
        other => panic!("heap offset came back as {other:?}"),
    };
    let rc = d.u64().unwrap() as i32;
    (h.flags, Some((rc, at)))
}

/// `avaBufferAccess`, which the guest library sends for in-place reads and
/// writes, sent with ranges and handles the library never would: ranges are
/// checked against the buffer, handles translated, and a released buffer is
/// no longer named.
fn heap_access_is_checked_and_names_only_the_buffer(g: &Guest, ctx: Id, queue: Id) {
    // SAFETY: the OpenCL entry points get live locals of the sizes they write, NULL where the API accepts it, and handles as opaque ids (the guest library never dereferences them).
    let (buf, other) = unsafe {
        let mut err = 0;
        let buf = cl!(g, clCreateBuffer)(ctx, 1, 1 << 20, std::ptr::null_mut(), &mut err);
        assert_eq!(err, 0);
        let other = cl!(g, clCreateBuffer)(ctx, 1, 1 << 20, std::ptr::null_mut(), &mut err);
        assert_eq!(err, 0);
        (buf, other)
    };
    let (q, b, o) = (wire_id(queue), wire_id(buf), wire_id(other));
    // A second channel of this process (same owner: same objects), used
    // to send what the guest library never would.
    let region = Region::open(&guest_region()).unwrap();
    let heap = region.header().heap_size;
    let mut evil = claim_opencl(&region);

    let (status, r) = raw_access(&mut evil, q, b, 4096, 4096);
    assert_eq!(status, Status::Ok as u32);
    let (rc, at_b) = r.unwrap();
    assert_eq!(rc, 0);
    let (_, r) = raw_access(&mut evil, q, o, 0, 1 << 20);
    let (rc, at_o) = r.unwrap();
    assert_eq!(rc, 0);
    // Each range lies inside the heap, and the two buffers do not overlap.
    assert!(
        at_b + 4096 <= heap && at_o + (1 << 20) <= heap,
        "{at_b} {at_o} {heap}"
    );
    let b_start = at_b - 4096;
    assert!(b_start + (1 << 20) <= at_o || at_o + (1 << 20) <= b_start);

    // Ranges outside the buffer, however they wrap, are the driver's
    // CL_INVALID_VALUE; nothing is named.
    for (off, size) in [
        (0, (1 << 20) + 1),
        ((1 << 20) - 1, 2),
        (u64::MAX - 8, 16),
        (8, u64::MAX),
        (0, 0),
    ] {
        let (status, r) = raw_access(&mut evil, q, b, off, size);
        assert_eq!(status, Status::Ok as u32, "{off} {size}");
        assert_eq!(r.unwrap().0, CL_INVALID_VALUE, "{off} {size}");
    }
    // Wrong and unknown handles: the handle errors, from the generated checks.
    let (status, _) = raw_access(&mut evil, b, b, 0, 16);
    assert_eq!(status, Status::ApiError as u32);
    let (status, _) = raw_access(&mut evil, q, q, 0, 16);
    assert_eq!(status, Status::ApiError as u32);
    let (status, _) = raw_access(&mut evil, q, 0xA7A0_0000_0BAD_F00D, 0, 16);
    assert_eq!(status, Status::ApiError as u32);
    // A context handle where a buffer belongs.
    let (status, _) = raw_access(&mut evil, q, wire_id(ctx), 0, 16);
    assert_eq!(status, Status::ApiError as u32);
    drop(evil);

    // Through the guest library: a blocking write to a buffer in the heap is
    // made in place, and one past the end gets the driver's error (an
    // asynchronous write could only log it).
    let data: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
    let mut back = vec![0u8; 4096];
    // SAFETY: the OpenCL entry points get live locals of the sizes they write, NULL where the API accepts it, and handles as opaque ids (the guest library never dereferences them).
    unsafe {
        let write = |off: usize, len: usize| {
            cl!(g, clEnqueueWriteBuffer)(
                queue,
                buf,
                1,
                off,
                len,
                data.as_ptr().cast(),
                0,
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(write(8192, 4096), 0);
        assert_eq!(write((1 << 20) - 8, 16), CL_INVALID_VALUE);
        assert_eq!(
            cl!(g, clEnqueueReadBuffer)(
                queue,
                buf,
                1,
                8192,
                4096,
                back.as_mut_ptr().cast(),
                0,
                std::ptr::null(),
                std::ptr::null_mut()
            ),
            0
        );
    }
    assert_eq!(back, data);

    // Released buffers leave the heap: their ranges are no longer named.
    // SAFETY: the OpenCL entry points get live locals of the sizes they write, NULL where the API accepts it, and handles as opaque ids (the guest library never dereferences them).
    unsafe {
        assert_eq!(cl!(g, clReleaseMemObject)(buf), 0);
        assert_eq!(cl!(g, clReleaseMemObject)(other), 0);
    }
    let mut evil = claim_opencl(&region);
    let (status, _) = raw_access(&mut evil, q, b, 0, 16);
    assert_eq!(status, Status::ApiError as u32, "a released buffer");
}

/// `clCreateBuffer(context, flags, size, NULL, &err)` as raw bytes, with
/// `extra` appended after the last argument.
fn create_buffer_msg(context: u64, size: u64, extra: &[u8]) -> Vec<u8> {
    let mut msg = call(ava_worker::opencl::func::clCreateBuffer, |e| {
        e.u64(context);
        e.u64(1); // CL_MEM_READ_WRITE
        e.u64(size);
        e.blob(None);
        e.u8(remoting::wire::BLOB_INLINE);
        e.u64(4);
    });
    msg.extend_from_slice(extra);
    msg
}

/// A command that the worker refuses as malformed (bytes after its last
/// argument) is refused before anything runs: no buffer is created, so its
/// context gains no reference. The same command without the extra bytes
/// creates one, which the same count shows.
#[test]
fn a_malformed_call_is_refused_before_it_runs() {
    if common::is_guest_half() {
        malformed_call_guest_half();
        return;
    }
    let mut stack = common::Stack::start("malformed");
    stack.run_guest_half("a_malformed_call_is_refused_before_it_runs");
    assert!(stack.alive(), "the worker survived");
}

fn malformed_call_guest_half() {
    let g = Guest::load();
    let null = std::ptr::null_mut::<c_void>();
    // SAFETY: the OpenCL entry points get live locals of the sizes they write, NULL where the API accepts it, and handles as opaque ids (the guest library never dereferences them).
    let (ctx, device, refs) = unsafe {
        let mut platform: Id = null;
        assert_eq!(
            cl!(g, clGetPlatformIDs)(1, &mut platform, std::ptr::null_mut()),
            0
        );
        let mut device: Id = null;
        assert_eq!(
            cl!(g, clGetDeviceIDs)(platform, 0xFFFF_FFFF, 1, &mut device, std::ptr::null_mut()),
            0
        );
        let mut err = 0;
        let ctx = cl!(g, clCreateContext)(std::ptr::null(), 1, &device, None, null, &mut err);
        assert_eq!(err, 0);
        let info = cl!(g, clGetContextInfo);
        let refs = move || {
            let mut n = 0u32;
            // CL_CONTEXT_REFERENCE_COUNT
            let rc = info(
                ctx,
                0x1080,
                4,
                (&mut n as *mut u32).cast(),
                std::ptr::null_mut(),
            );
            assert_eq!(rc, 0);
            n
        };
        (ctx, device, refs)
    };
    // A second channel of this process (same owner, same objects).
    let region = Region::open(&guest_region()).unwrap();
    let mut raw = claim_opencl(&region);
    let wait = WaitStrategy::BALANCED;
    let timeout = Some(Duration::from_secs(30));
    let mut reply = Vec::new();
    let mut send = |msg: &[u8], reply: &mut Vec<u8>| {
        raw.tx.send(msg, &wait, timeout).unwrap();
        raw.rx.recv(reply, &wait, timeout).unwrap();
        Decoder::new(reply).unwrap().0.flags
    };
    let before = refs();
    for extra in [&99u64.to_le_bytes()[..], &[0u8][..], &[0u8; 3][..]] {
        let status = send(&create_buffer_msg(wire_id(ctx), 4096, extra), &mut reply);
        assert_eq!(status, Status::Protocol as u32, "{extra:?}");
        assert_eq!(refs(), before, "a refused clCreateBuffer created a buffer");
    }
    // The well-formed command does create a buffer: the count can tell.
    let status = send(&create_buffer_msg(wire_id(ctx), 4096, &[]), &mut reply);
    assert_eq!(status, Status::Ok as u32);
    let (_, mut d) = Decoder::new(&reply).unwrap();
    assert_eq!(
        d.blob().unwrap(),
        remoting::wire::Blob::Inline(&0i32.to_le_bytes())
    );
    let buf = d.u64().unwrap();
    assert_ne!(buf, 0);
    assert_eq!(refs(), before + 1);
    // SAFETY: the OpenCL entry points get live locals of the sizes they write, NULL where the API accepts it, and handles as opaque ids (the guest library never dereferences them).
    unsafe {
        assert_eq!(cl!(g, clReleaseMemObject)(buf as usize as Id), 0);
    }
    assert_eq!(refs(), before);

    // A (key, value) list must end with a zero key: one that ends on a
    // value (an even count) would have the driver read the next key past
    // its end. Refused before the driver sees it.
    let queue_msg = |props: &[u64]| {
        call(
            ava_worker::opencl::func::clCreateCommandQueueWithProperties,
            |e| {
                e.u64(wire_id(ctx));
                e.u64(wire_id(device));
                let bytes: Vec<u8> = props.iter().flat_map(|p| p.to_le_bytes()).collect();
                e.blob(Some(&bytes));
                e.u8(remoting::wire::BLOB_INLINE);
                e.u64(4);
            },
        )
    };
    const CL_QUEUE_PROPERTIES: u64 = 0x1093;
    let status = send(&queue_msg(&[CL_QUEUE_PROPERTIES, 0]), &mut reply);
    assert_eq!(status, Status::Protocol as u32, "a list ending on a value");
    let status = send(&queue_msg(&[CL_QUEUE_PROPERTIES, 0, 0]), &mut reply);
    assert_eq!(status, Status::Ok as u32, "the same list, terminated");
    let (_, mut d) = Decoder::new(&reply).unwrap();
    d.blob().unwrap();
    let queue = d.u64().unwrap();

    // An event wait list whose pointer and count disagree, sent by a guest
    // that skips the guest library's check (`require` in the spec): the
    // worker refuses it with CL_INVALID_EVENT_WAIT_LIST (the driver,
    // given a NULL list of one event, would crash).
    let marker = call(ava_worker::opencl::func::clEnqueueMarkerWithWaitList, |e| {
        e.u64(queue);
        e.u64(1);
        e.blob(None);
        e.u64(0);
    });
    let status = send(&marker, &mut reply);
    assert_eq!(status, Status::ApiError as u32);
    let (_, mut d) = Decoder::new(&reply).unwrap();
    assert_eq!(d.i64().unwrap(), -57, "CL_INVALID_EVENT_WAIT_LIST");
}

/// A remoted program reaches no native OpenCL: its ICD loader, asked
/// directly (not through the guest library), finds no platform, so a call
/// the guest library did not remote would fail rather than run natively.
#[test]
fn remoted_programs_find_no_native_platform() {
    let stack = common::Stack::start("nonative");
    let probe = "import ctypes\n\
        lib = ctypes.CDLL('libOpenCL.so.1')\n\
        n = ctypes.c_uint(0)\n\
        rc = lib.clGetPlatformIDs(0, None, ctypes.byref(n))\n\
        print(f'rc={rc} platforms={n.value}')\n";
    let run = |mut c: Command| {
        c.args(["-c", probe]);
        let o = common::run_capture(c, Duration::from_secs(60));
        assert!(o.status.success(), "{}", common::text(&o.stderr));
        common::text(&o.stdout)
    };
    let native = run(Command::new("python3"));
    assert!(
        native.contains("rc=0 platforms=1") || native.contains("rc=0 platforms=2"),
        "the host has a native platform: {native}"
    );
    let remote = run(stack.remote("python3"));
    assert!(
        remote.contains("platforms=0"),
        "a remoted program reached a native platform: {remote}"
    );
}
