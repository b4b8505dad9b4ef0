//! A thread's channel handed over to a later thread of the same process.
//!
//! Each thread of a guest process gets a channel of its own; when a thread
//! exits its channel goes back to the region, and the next thread of the
//! process that calls claims it again (the lowest free one). The process's
//! objects are the process's, not the thread's: they outlive the thread
//! while another channel of the process is open. Events of asynchronous
//! calls get ids that the guest library chooses, which carry the channel's
//! index: the ids chosen by the new thread over the same channel must not
//! repeat the ones the old thread chose, which are still bound on the
//! worker (the worker would refuse them: "cannot be bound").

mod common;

use std::ffi::c_void;
use std::time::{Duration, Instant};

use ava_worker::opencl::{
    CL_COMMAND_MARKER, CL_COMMAND_WRITE_BUFFER, CL_COMPLETE, CL_EVENT_COMMAND_EXECUTION_STATUS,
    CL_EVENT_COMMAND_QUEUE, CL_EVENT_COMMAND_TYPE, CL_MEM_READ_WRITE,
};
use common::{Cl, ClId, ClSetup};
use transport::{ChannelState, Region};

/// The guest library's `$f`, which it must export.
macro_rules! cl {
    ($g:expr, $f:ident) => {
        $g.api.$f.expect(stringify!($f))
    };
}

const TEST: &str = "a_later_thread_takes_over_a_finished_threads_channel";
/// Bytes each thread writes (through the arena: above the inline limit).
const LEN: usize = 64 << 10;

/// The channels of `region` that this process holds.
fn ours(region: &Region) -> Vec<u32> {
    let pid = std::process::id();
    (0..region.channel_count())
        .filter(|&i| {
            region
                .status(i)
                .is_ok_and(|s| s.state == ChannelState::Claimed && s.owner_pid == pid)
        })
        .collect()
}

/// What thread A leaves behind (as integers: handles are not `Send`).
struct Left {
    channel: u32,
    queue: usize,
    buffer: usize,
    write: usize,
    marker: usize,
}

/// `clGetEventInfo(event, what)` as an integer of `size` bytes.
///
/// # Safety
/// `event` is a handle the guest library returned.
unsafe fn event_info(g: &Cl, event: ClId, what: u32, size: usize) -> (i32, u64) {
    let mut v = 0u64;
    // SAFETY: `v` holds 8 bytes, at least `size`.
    let rc = unsafe {
        cl!(g, clGetEventInfo)(
            event,
            what,
            size,
            (&mut v as *mut u64).cast(),
            std::ptr::null_mut(),
        )
    };
    (rc, v)
}

#[test]
fn a_later_thread_takes_over_a_finished_threads_channel() {
    if common::is_guest_half() {
        handover_guest_half();
        return;
    }
    let mut stack = common::Stack::start("handover");
    let out = stack.run_guest_half(TEST);
    let printed = common::text(&out.stdout);
    // The process's last channel gone, the worker cleaned up after it.
    stack.wait_for_log_line(&["buffer heap after the guest's cleanup"]);
    let log = stack.log();
    assert!(!log.contains("cannot be bound"), "{log}");
    assert!(!log.contains("asynchronous call failed"), "{log}");
    let released: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("guest released its channel"))
        .collect();
    // The main thread's channel, thread A's and thread B's (on A's index).
    assert_eq!(released.len(), 3, "{printed}\n{log}");
    for l in &released {
        assert_eq!(common::log_field(l, "rejected"), Some("0"), "{l}");
    }
    // A's channel ended while the main thread's was open: nothing of the
    // process was freed then. Whichever of the other two ended last freed
    // what the process still held: platform, device, context and queue.
    assert_eq!(common::log_field(released[0], "freed"), Some("0"), "{log}");
    let mut freed: Vec<&str> = released
        .iter()
        .filter_map(|l| common::log_field(l, "freed"))
        .collect();
    freed.sort_unstable();
    assert_eq!(freed, ["0", "0", "4"], "{log}");
}

/// The guest half: the main thread sets up (and keeps its channel); thread
/// A creates a queue and a buffer, writes the buffer and sets a marker, both
/// with events it keeps, and exits; thread B, on A's channel again, does
/// the same with objects of its own and uses A's.
fn handover_guest_half() {
    let g = Cl::guest();
    let s = ClSetup::new(&g);
    let region = Region::open(std::path::Path::new(
        &std::env::var_os("AVA_REGION").expect("the guest half runs with AVA_REGION"),
    ))
    .expect("open the region");
    let main_channels = ours(&region);
    assert_eq!(main_channels.len(), 1, "{main_channels:?}");
    let (context, main_queue, device) = (s.context as usize, s.queue as usize, s.device as usize);
    let data_a: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let data_b: Vec<u8> = (0..LEN).map(|i| (i % 241) as u8 ^ 0x5a).collect();

    let left = std::thread::scope(|sc| {
        sc.spawn(|| {
            let null = std::ptr::null_mut::<c_void>();
            let mut err = 0;
            // SAFETY: OpenCL calls with handles the guest library returned
            // and live locals that match the sizes passed.
            unsafe {
                let queue =
                    cl!(g, clCreateCommandQueue)(context as ClId, device as ClId, 0, &mut err);
                assert_eq!(err, 0);
                let channel: Vec<u32> = ours(&region)
                    .into_iter()
                    .filter(|c| !main_channels.contains(c))
                    .collect();
                assert_eq!(channel.len(), 1, "thread A has a channel of its own");
                let buffer =
                    cl!(g, clCreateBuffer)(context as ClId, CL_MEM_READ_WRITE, LEN, null, &mut err);
                assert_eq!(err, 0);
                let mut write: ClId = null;
                assert_eq!(
                    cl!(g, clEnqueueWriteBuffer)(
                        queue,
                        buffer,
                        0,
                        0,
                        LEN,
                        data_a.as_ptr().cast(),
                        0,
                        std::ptr::null(),
                        &mut write
                    ),
                    0
                );
                let mut marker: ClId = null;
                assert_eq!(
                    cl!(g, clEnqueueMarkerWithWaitList)(queue, 0, std::ptr::null(), &mut marker),
                    0
                );
                let events = [write, marker];
                assert_eq!(cl!(g, clWaitForEvents)(2, events.as_ptr()), 0);
                Left {
                    channel: channel[0],
                    queue: queue as usize,
                    buffer: buffer as usize,
                    write: write as usize,
                    marker: marker as usize,
                }
            }
        })
        .join()
        .expect("thread A")
    });
    // Thread A has exited: its channel goes back to the region.
    let deadline = Instant::now() + Duration::from_secs(30);
    while region.status(left.channel).expect("status").state != ChannelState::Free {
        assert!(
            Instant::now() < deadline,
            "thread A's channel {} was not given back",
            left.channel
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    std::thread::scope(|sc| {
        sc.spawn(|| {
            let null = std::ptr::null_mut::<c_void>();
            let mut err = 0;
            // SAFETY: as for thread A.
            unsafe {
                let buffer =
                    cl!(g, clCreateBuffer)(context as ClId, CL_MEM_READ_WRITE, LEN, null, &mut err);
                assert_eq!(err, 0);
                let channel: Vec<u32> = ours(&region)
                    .into_iter()
                    .filter(|c| !main_channels.contains(c))
                    .collect();
                assert_eq!(channel, [left.channel], "thread B claims A's channel");
                // A's queue, B's buffer; the main thread's queue, A's buffer.
                let queue_a = left.queue as ClId;
                let mut write: ClId = null;
                assert_eq!(
                    cl!(g, clEnqueueWriteBuffer)(
                        queue_a,
                        buffer,
                        0,
                        0,
                        LEN,
                        data_b.as_ptr().cast(),
                        0,
                        std::ptr::null(),
                        &mut write
                    ),
                    0
                );
                let mut marker: ClId = null;
                assert_eq!(
                    cl!(g, clEnqueueMarkerWithWaitList)(
                        main_queue as ClId,
                        0,
                        std::ptr::null(),
                        &mut marker
                    ),
                    0
                );
                // Four guest-chosen ids over the same channel, all distinct.
                // The application holds objects (the library is also an
                // ICD): each one's second word is its id on the wire.
                let id_of = |h: usize| *(h as *const u64).add(1) as usize;
                let ids = [left.write, left.marker, write as usize, marker as usize].map(id_of);
                for id in ids {
                    let id = id as u64;
                    assert_eq!(id >> 48, remoting::GUEST_ID_TAG >> 48, "{id:#x}");
                    assert_eq!((id >> 32) & 0xFFFF, u64::from(left.channel), "{id:#x}");
                }
                let mut sorted = ids;
                sorted.sort_unstable();
                sorted
                    .windows(2)
                    .for_each(|w| assert_ne!(w[0], w[1], "{ids:x?}"));
                // Each id names its own command, on its own queue.
                let events: Vec<ClId> = ids.iter().map(|&e| e as ClId).collect();
                assert_eq!(cl!(g, clWaitForEvents)(4, events.as_ptr()), 0);
                let expect = [
                    (CL_COMMAND_WRITE_BUFFER, left.queue),
                    (CL_COMMAND_MARKER, left.queue),
                    (CL_COMMAND_WRITE_BUFFER, left.queue),
                    (CL_COMMAND_MARKER, main_queue),
                ];
                for (e, (command, queue)) in events.iter().zip(expect) {
                    assert_eq!(
                        event_info(&g, *e, CL_EVENT_COMMAND_TYPE, 4),
                        (0, u64::from(command))
                    );
                    assert_eq!(
                        event_info(&g, *e, CL_EVENT_COMMAND_QUEUE, 8),
                        (0, queue as u64)
                    );
                    assert_eq!(
                        event_info(&g, *e, CL_EVENT_COMMAND_EXECUTION_STATUS, 4),
                        (0, CL_COMPLETE as u64)
                    );
                }
                // Both threads' data landed in their own buffers.
                let mut back = vec![0u8; LEN];
                for (buf, data) in [(left.buffer as ClId, &data_a), (buffer, &data_b)] {
                    assert_eq!(
                        cl!(g, clEnqueueReadBuffer)(
                            main_queue as ClId,
                            buf,
                            1,
                            0,
                            LEN,
                            back.as_mut_ptr().cast(),
                            0,
                            std::ptr::null(),
                            std::ptr::null_mut()
                        ),
                        0
                    );
                    assert_eq!(&back, data);
                }
                for e in events {
                    assert_eq!(cl!(g, clReleaseEvent)(e), 0);
                }
                assert_eq!(cl!(g, clReleaseMemObject)(buffer), 0);
                assert_eq!(cl!(g, clReleaseMemObject)(left.buffer as ClId), 0);
                assert_eq!(cl!(g, clReleaseCommandQueue)(queue_a), 0);
            }
        })
        .join()
        .expect("thread B")
    });
    println!("handover done on channel {}", left.channel);
}
