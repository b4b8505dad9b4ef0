//! Hand-written fast paths that the OpenCL spec names with
//! `fast_path(NAME)`: each runs first, with the application's arguments,
//! and returns `None` to let the generated remote call go ahead.
//!
//! Reads and blocking writes, with no events, of a buffer that the worker
//! placed in the region's heap are made in place: one `avaBufferAccess`
//! call (the worker waits until the queue has finished and names where the
//! bytes are), then one copy between the application's memory and the
//! heap.
//! The ordinary path takes two copies (through the channel's arena) and a
//! device command.

use std::sync::Arc;

use remoting::guest::Connection;

use crate::opencl::{self, cl_bool, cl_command_queue, cl_event, cl_int, cl_mem, cl_uint};

/// What the worker said of an access.
enum Access {
    /// The bytes are at this heap offset, and no command is using them.
    InPlace(Arc<Connection>, u64),
    /// The call fails with this error (what the driver would return).
    Error(cl_int),
}

/// Asks the worker for the heap offset of `buffer`'s bytes
/// `[offset, offset + size)`, once its queue has finished. `None`: the
/// buffer is not in the heap (or the region has none).
fn in_heap(queue: cl_command_queue, buffer: cl_mem, offset: usize, size: usize) -> Option<Access> {
    let conn = remoting::guest::connection(&crate::opencl::API, crate::locate_region).ok()?;
    if conn.heap().size() == 0 {
        return None;
    }
    let mut at: u64 = 0;
    // SAFETY: `at` is a live u64 for the call's one output.
    let rc = unsafe { opencl::avaBufferAccess(queue, buffer, offset, size, &mut at) };
    match rc {
        opencl::CL_SUCCESS => Some(Access::InPlace(conn, at)),
        e if e < 0 => Some(Access::Error(e)),
        _ => None,
    }
}

/// The conditions both fast paths share (data, no events), then the access
/// and `copy` between the application and the heap at the offset the worker
/// named. `None`: take the ordinary path.
#[allow(clippy::too_many_arguments)]
fn in_place(
    queue: cl_command_queue,
    buffer: cl_mem,
    offset: usize,
    size: usize,
    has_data: bool,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
    copy: impl FnOnce(&transport::Arena, u64) -> bool,
) -> Option<cl_int> {
    if !has_data
        || size == 0
        || num_events_in_wait_list != 0
        || !event_wait_list.is_null()
        || !event.is_null()
    {
        return None;
    }
    match in_heap(queue, buffer, offset, size)? {
        Access::InPlace(conn, at) => copy(conn.heap(), at).then_some(opencl::CL_SUCCESS),
        Access::Error(e) => Some(e),
    }
}

/// `clEnqueueReadBuffer` with no events, from a buffer in the heap.
///
/// # Safety
/// OpenCL's contract: `ptr` points to `size` writable bytes.
#[allow(clippy::too_many_arguments)]
pub unsafe fn read_buffer(
    command_queue: cl_command_queue,
    buffer: cl_mem,
    _blocking_read: cl_bool,
    offset: usize,
    size: usize,
    ptr: *mut std::ffi::c_void,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> Option<cl_int> {
    in_place(
        command_queue,
        buffer,
        offset,
        size,
        !ptr.is_null(),
        num_events_in_wait_list,
        event_wait_list,
        event,
        |heap, at| {
            // SAFETY: the caller's contract (`ptr` is not NULL here).
            let dst = unsafe { std::slice::from_raw_parts_mut(ptr.cast::<u8>(), size) };
            let ok = heap.read(at, dst).is_ok();
            tracing::trace!(size, ok, "read in place");
            ok
        },
    )
}

/// `clEnqueueWriteBuffer`, blocking, with no events, to a buffer in the
/// heap. (A blocking write waits for the queue's earlier commands natively
/// too; made in place it also returns the driver's error for a bad range,
/// which an asynchronous write can only log.)
///
/// # Safety
/// OpenCL's contract: `ptr` points to `size` readable bytes.
#[allow(clippy::too_many_arguments)]
pub unsafe fn write_buffer(
    command_queue: cl_command_queue,
    buffer: cl_mem,
    blocking_write: cl_bool,
    offset: usize,
    size: usize,
    ptr: *const std::ffi::c_void,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> Option<cl_int> {
    in_place(
        command_queue,
        buffer,
        offset,
        size,
        blocking_write != 0 && !ptr.is_null(),
        num_events_in_wait_list,
        event_wait_list,
        event,
        |heap, at| {
            // SAFETY: the caller's contract (`ptr` is not NULL here).
            let src = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), size) };
            let ok = heap.write(at, src).is_ok();
            tracing::trace!(size, ok, "written in place");
            ok
        },
    )
}
