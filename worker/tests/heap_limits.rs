//! Transfers larger than a channel's data arena.
//!
//! A buffer's bytes travel through the channel's data arena unless the
//! buffer lives in the region's heap and the guest library can read or
//! write it in place (blocking, with no events). Natively every transfer
//! below succeeds (PoCL, run first in this process); remoted too: one that
//! must cross the arena and does not fit it goes in pieces (initial data of
//! a buffer too: the buffer is created, then written in pieces), one made in
//! place needs no arena whatever its size.

mod common;

use std::ffi::c_void;

use ava_worker::opencl::{CL_MEM_COPY_HOST_PTR, CL_MEM_READ_WRITE};
use common::{Cl, ClId, ClSetup};

/// The guest library's (or host library's) `$f`, which it must export.
macro_rules! cl {
    ($g:expr, $f:ident) => {
        $g.api.$f.expect(stringify!($f))
    };
}

/// Each channel's data arena.
const ARENA: usize = 64 << 10;
/// A transfer 16 times as large as the arena.
const BIG: usize = 1 << 20;
/// A buffer larger than the whole heap (about 1.6 MiB: see the test).
const HUGE: usize = 4 << 20;

/// What each operation returned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcomes {
    /// `BIG`-byte buffer, placed in the heap when remoted.
    heap_create: i32,
    /// Blocking write of `BIG` bytes, no events (in place when remoted).
    heap_blocking_write: i32,
    /// Blocking read of `BIG` bytes, no events (in place when remoted).
    heap_blocking_read: i32,
    /// Whether that read returned the bytes written.
    heap_read_back: bool,
    /// Non-blocking write of `BIG` bytes to the heap buffer (never in place).
    heap_async_write: i32,
    /// Blocking read of `BIG` bytes with an event (never in place).
    heap_read_with_event: i32,
    /// Whether that read returned the non-blocking write's bytes.
    heap_async_read_back: bool,
    /// `HUGE`-byte buffer: does not fit the heap, lives in device memory.
    device_create: i32,
    /// Blocking write of `BIG` bytes to it.
    device_blocking_write: i32,
    /// Whether a blocking read of them returned them.
    device_read_back: bool,
    /// Blocking read of `BIG` bytes from it.
    device_blocking_read: i32,
    /// The same transfers in pieces that fit the arena, read back equal.
    device_in_pieces: bool,
    /// `clCreateBuffer(CL_MEM_COPY_HOST_PTR)` of `BIG` bytes of data.
    create_with_data: i32,
    /// Whether the buffer created with data holds it.
    with_data_read_back: bool,
    /// `clFinish` at the end: the channel still works.
    finish: i32,
}

/// What a native implementation does: everything succeeds.
const NATIVE: Outcomes = Outcomes {
    heap_create: 0,
    heap_blocking_write: 0,
    heap_blocking_read: 0,
    heap_read_back: true,
    heap_async_write: 0,
    heap_read_with_event: 0,
    heap_async_read_back: true,
    device_create: 0,
    device_blocking_write: 0,
    device_blocking_read: 0,
    device_read_back: true,
    device_in_pieces: true,
    create_with_data: 0,
    with_data_read_back: true,
    finish: 0,
};

/// Runs every transfer through `g` and says what each returned.
fn transfers(g: &Cl) -> Outcomes {
    let s = ClSetup::new(g);
    let null = std::ptr::null_mut::<c_void>();
    let pattern = |seed: u32, n: usize| -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed) as u8)
            .collect()
    };
    let data = pattern(1, BIG);
    let mut back = vec![0u8; BIG];
    let mut err = 0;
    // SAFETY: OpenCL calls with live locals and sizes that match them.
    unsafe {
        let write = |buf: ClId, blocking: u32, off: usize, bytes: &[u8]| {
            cl!(g, clEnqueueWriteBuffer)(
                s.queue,
                buf,
                blocking,
                off,
                bytes.len(),
                bytes.as_ptr().cast(),
                0,
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        };
        let read = |buf: ClId, off: usize, bytes: &mut [u8], event: *mut ClId| {
            cl!(g, clEnqueueReadBuffer)(
                s.queue,
                buf,
                1,
                off,
                bytes.len(),
                bytes.as_mut_ptr().cast(),
                0,
                std::ptr::null(),
                event,
            )
        };
        let heap = cl!(g, clCreateBuffer)(s.context, CL_MEM_READ_WRITE, BIG, null, &mut err);
        let heap_create = err;
        let heap_blocking_write = write(heap, 1, 0, &data);
        let heap_blocking_read = read(heap, 0, &mut back, std::ptr::null_mut());
        let heap_read_back = back == data;
        // Natively a non-blocking write reads the data until it completes.
        let later = pattern(2, BIG);
        let heap_async_write = write(heap, 0, 0, &later);
        assert_eq!(cl!(g, clFinish)(s.queue), 0);
        let mut event: ClId = null;
        let heap_read_with_event = read(heap, 0, &mut back, &mut event);
        if heap_read_with_event == 0 {
            assert_eq!(cl!(g, clWaitForEvents)(1, &event), 0);
            assert_eq!(cl!(g, clReleaseEvent)(event), 0);
        }
        let heap_async_read_back = back == later;
        drop(later);

        let dev = cl!(g, clCreateBuffer)(s.context, CL_MEM_READ_WRITE, HUGE, null, &mut err);
        let device_create = err;
        let device_blocking_write = write(dev, 1, 0, &data);
        back.fill(0);
        let device_blocking_read = read(dev, 0, &mut back, std::ptr::null_mut());
        let device_read_back = back == data;
        // In pieces of half the arena (above the inline limit, so each
        // piece does cross the arena).
        let piece = ARENA / 2;
        let other = pattern(3, BIG);
        let mut ok = true;
        for off in (0..BIG).step_by(piece) {
            ok &= write(dev, 1, BIG + off, &other[off..off + piece]) == 0;
        }
        back.fill(0);
        for off in (0..BIG).step_by(piece) {
            ok &= read(
                dev,
                BIG + off,
                &mut back[off..off + piece],
                std::ptr::null_mut(),
            ) == 0;
        }
        let device_in_pieces = ok && back == other;

        let with_data = cl!(g, clCreateBuffer)(
            s.context,
            CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
            BIG,
            data.as_ptr() as *mut c_void,
            &mut err,
        );
        let create_with_data = err;
        let mut with_data_read_back = false;
        if !with_data.is_null() {
            back.fill(0);
            with_data_read_back =
                read(with_data, 0, &mut back, std::ptr::null_mut()) == 0 && back == data;
            assert_eq!(cl!(g, clReleaseMemObject)(with_data), 0);
        }
        let finish = cl!(g, clFinish)(s.queue);
        assert_eq!(cl!(g, clReleaseMemObject)(heap), 0);
        assert_eq!(cl!(g, clReleaseMemObject)(dev), 0);
        assert_eq!(cl!(g, clReleaseCommandQueue)(s.queue), 0);
        assert_eq!(cl!(g, clReleaseContext)(s.context), 0);
        Outcomes {
            heap_create,
            heap_blocking_write,
            heap_blocking_read,
            heap_read_back,
            heap_async_write,
            heap_read_with_event,
            heap_async_read_back,
            device_create,
            device_blocking_write,
            device_blocking_read,
            device_read_back,
            device_in_pieces,
            create_with_data,
            with_data_read_back,
            finish,
        }
    }
}

const TEST: &str = "transfers_larger_than_the_arena_succeed_as_natively";

#[test]
fn transfers_larger_than_the_arena_succeed_as_natively() {
    if common::is_guest_half() {
        assert_eq!(transfers(&Cl::guest()), NATIVE, "remoted");
        return;
    }
    assert_eq!(transfers(&Cl::native()), NATIVE, "natively");
    // Two channels with 64 KiB arenas and rings; a heap of at least 1 MiB,
    // which grows to fill the region file (rounded up to 2 MiB): room for
    // the `BIG` buffer, not for the `HUGE` one.
    let mut stack = common::Stack::start_args(
        "arena-small",
        &[
            "--channels",
            "2",
            "--ring-size",
            "65536",
            "--arena-size",
            &ARENA.to_string(),
            "--heap-size",
            "1048576",
        ],
    );
    let region = transport::Region::open(&stack.region).expect("open the region");
    let heap = region.header().heap_size as usize;
    assert!(BIG < heap && heap < HUGE, "heap of {heap} bytes");
    let out = stack.run_guest_half(TEST);
    let guest_log = common::text(&out.stderr);
    assert!(
        !guest_log.contains("exceeds the channel's data arena"),
        "{guest_log}"
    );
    let log = stack.log();
    assert!(log.contains("buffer placed in the heap"), "{log}");
    assert!(log.contains("buffer in the device's own memory"), "{log}");
    let cleanup = stack.wait_for_log_line(&["buffer heap after the guest's cleanup"]);
    assert_eq!(
        common::log_field(&cleanup, "in_use"),
        Some("0"),
        "{cleanup}"
    );
}
