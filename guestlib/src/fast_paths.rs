//! Hand-written fast paths that the OpenCL spec names with
//! `fast_path(NAME)`: each runs first, with the application's arguments,
//! and returns `None` to let the generated remote call go ahead.
//!
//! Reads, blocking writes and writes larger than a piece (below), with no
//! events, of a buffer that the worker
//! placed in the region's heap are made in place: one `avaBufferAccess`
//! call (the worker waits until the queue has finished and names where the
//! bytes are), then one copy between the application's memory and the
//! heap.
//! The ordinary path takes two copies (through the channel's arena) and a
//! device command.
//!
//! Reads and writes larger than a quarter of the channel's data arena (and
//! not made in place) go in pieces of that size: several writes are in
//! flight at once (each piece's arena space comes back when the worker has
//! written it), reads follow one another. No size that works natively fails
//! for want of arena space.

use std::sync::Arc;

use remoting::guest::Connection;

use crate::opencl::{self, cl_bool, cl_command_queue, cl_event, cl_int, cl_mem, cl_uint};

/// Where the bytes `[offset, offset + size)` of `buffer` are in the heap,
/// once `queue` has finished (`Err`: the driver's error for the range);
/// `None` when the buffer is not in the heap.
pub(crate) fn heap_range(
    queue: cl_command_queue,
    buffer: cl_mem,
    offset: usize,
    size: usize,
) -> Option<Result<(transport::Arena, u64), cl_int>> {
    match in_heap(queue, buffer, offset, size)? {
        Access::InPlace(conn, at) => Some(Ok((conn.heap().clone(), at))),
        Access::Error(e) => Some(Err(e)),
    }
}

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

/// The size of a transfer's pieces through the channel's arena (a quarter
/// of it); `usize::MAX` when there is no connection.
fn piece_size() -> usize {
    remoting::guest::connection(&crate::opencl::API, crate::locate_region)
        .map_or(usize::MAX, |c| (c.arena_size() / 4).max(1))
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
    if let Some(e) = crate::recorded::host_access_error(buffer, true, false) {
        return Some(e);
    }
    let done = in_place(
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
    );
    if done.is_some() {
        return done;
    }
    in_pieces(
        buffer,
        offset,
        size,
        ptr.is_null(),
        num_events_in_wait_list,
        event_wait_list,
        event,
        |off, len, n, list, ev| {
            // SAFETY: the piece lies inside the application's `size` bytes
            // at `ptr`; the wait list is the application's or a piece's.
            unsafe {
                opencl::clEnqueueReadBuffer(
                    command_queue,
                    buffer,
                    1,
                    offset + off,
                    len,
                    ptr.cast::<u8>().add(off).cast(),
                    n,
                    list,
                    ev,
                )
            }
        },
    )
}

/// `clEnqueueWriteBuffer`, blocking or larger than a piece, with no events,
/// to a buffer in the heap. (A blocking write waits for the queue's earlier commands natively
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
    if let Some(e) = crate::recorded::host_access_error(buffer, false, true) {
        return Some(e);
    }
    // Asynchronous: the driver's answer would come too late.
    if ptr.is_null() && !buffer.is_null() && !command_queue.is_null() {
        return Some(opencl::CL_INVALID_VALUE);
    }
    if !event_wait_list.is_null() {
        // SAFETY: OpenCL's contract: the list holds that many events.
        let list = unsafe {
            std::slice::from_raw_parts(event_wait_list, num_events_in_wait_list as usize)
        };
        if list.iter().any(|e| e.is_null()) {
            return Some(opencl::CL_INVALID_EVENT_WAIT_LIST);
        }
    }
    // A write that may be invalid goes synchronously (`crate::checks`).
    if !crate::recorded::passing() {
        use crate::checks::{Obj, objects_suspect, range_suspect, synchronously_if};
        // SAFETY: OpenCL's contract: the wait list holds that many events.
        let suspect = unsafe {
            objects_suspect(
                command_queue,
                &[Obj::Mem(buffer)],
                num_events_in_wait_list,
                event_wait_list,
            )
        } || range_suspect(buffer, offset, size);
        if suspect {
            // SAFETY: the application's arguments, passed on.
            return synchronously_if(true, || unsafe {
                opencl::clEnqueueWriteBuffer(
                    command_queue,
                    buffer,
                    blocking_write,
                    offset,
                    size,
                    ptr,
                    num_events_in_wait_list,
                    event_wait_list,
                    event,
                )
            });
        }
    }
    let done = in_place(
        command_queue,
        buffer,
        offset,
        size,
        // A non-blocking write too when it is large (it would go in pieces
        // through the arena, two copies): made in place it is one copy,
        // complete when the call returns, which a non-blocking write may be.
        !ptr.is_null() && (blocking_write != 0 || size > piece_size()),
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
    );
    if done.is_some() {
        return done;
    }
    in_pieces(
        buffer,
        offset,
        size,
        ptr.is_null(),
        num_events_in_wait_list,
        event_wait_list,
        event,
        |off, len, n, list, ev| {
            // The application's own blocking flag on the last piece.
            let blocking = if off + len == size { blocking_write } else { 0 };
            // SAFETY: the piece lies inside the application's `size` bytes
            // at `ptr`; the wait list is the application's or a piece's.
            unsafe {
                opencl::clEnqueueWriteBuffer(
                    command_queue,
                    buffer,
                    blocking,
                    offset + off,
                    len,
                    ptr.cast::<u8>().add(off).cast(),
                    n,
                    list,
                    ev,
                )
            }
        },
    )
}

/// Whether `[offset, offset + size)` lies inside `buffer`:
/// `CL_INVALID_VALUE` if not, as the driver says for a read, write or map
/// (or the error of the size query).
pub(crate) fn check_range(buffer: cl_mem, offset: usize, size: usize) -> cl_int {
    if let Some(total) = crate::checks::buffer_size(buffer) {
        let inside = offset
            .checked_add(size)
            .is_some_and(|end| end as u64 <= total);
        return if inside {
            opencl::CL_SUCCESS
        } else {
            opencl::CL_INVALID_VALUE
        };
    }
    let mut total: u64 = 0;
    // SAFETY: `total` is a live u64 for the query's one output.
    let rc = unsafe {
        opencl::clGetMemObjectInfo(
            buffer,
            opencl::CL_MEM_SIZE,
            size_of::<u64>(),
            (&mut total as *mut u64).cast(),
            std::ptr::null_mut(),
        )
    };
    if rc != opencl::CL_SUCCESS {
        rc
    } else if offset
        .checked_add(size)
        .is_none_or(|end| end as u64 > total)
    {
        opencl::CL_INVALID_VALUE
    } else {
        opencl::CL_SUCCESS
    }
}

/// A transfer of `size` bytes at `offset` of `buffer` in pieces that fit the
/// channel's arena, each made by `piece(offset in the transfer, length,
/// wait list length, wait list, event or NULL)`. `None` when the transfer
/// fits in one piece (or has no data): the ordinary path takes it. A range
/// outside the buffer is `CL_INVALID_VALUE` before any piece is sent, as
/// natively.
///
/// The first piece waits for the application's wait list. When the
/// application asks for an event, each later piece waits for the one before
/// and the last piece's event is the application's: it completes when the
/// whole transfer has, on an out-of-order queue too, and it is the event of
/// a command of the transfer's own type.
#[allow(clippy::too_many_arguments)]
fn in_pieces(
    buffer: cl_mem,
    offset: usize,
    size: usize,
    no_data: bool,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
    mut piece: impl FnMut(usize, usize, cl_uint, *const cl_event, *mut cl_event) -> cl_int,
) -> Option<cl_int> {
    if no_data || size == 0 {
        return None;
    }
    let step = piece_size();
    if step == usize::MAX || size <= step {
        return None;
    }
    let rc = check_range(buffer, offset, size);
    if rc != opencl::CL_SUCCESS {
        return Some(rc);
    }
    tracing::debug!(size, step, "transfer in pieces");
    let chain = !event.is_null();
    let mut prev: cl_event = std::ptr::null_mut();
    let mut off = 0;
    let mut rc = opencl::CL_SUCCESS;
    while off < size {
        let len = step.min(size - off);
        let (n, list) = if prev.is_null() {
            (num_events_in_wait_list, event_wait_list)
        } else {
            (1, &prev as *const cl_event)
        };
        let mut ev: cl_event = std::ptr::null_mut();
        let want = if chain {
            &mut ev as *mut cl_event
        } else {
            std::ptr::null_mut()
        };
        rc = piece(off, len, n, list, want);
        if !prev.is_null() {
            // SAFETY: the previous piece's event, which this library holds.
            unsafe { opencl::clReleaseEvent(prev) };
        }
        prev = ev;
        if rc != opencl::CL_SUCCESS {
            break;
        }
        off += len;
    }
    if rc == opencl::CL_SUCCESS && chain {
        // SAFETY: the caller's event pointer (checked non-NULL).
        unsafe { *event = prev };
    } else if !prev.is_null() {
        // SAFETY: the last piece's event, which this library holds.
        unsafe { opencl::clReleaseEvent(prev) };
    }
    Some(rc)
}

/// `clCreateBuffer` with initial data larger than a piece of the arena
/// (`CL_MEM_COPY_HOST_PTR`, or `CL_MEM_USE_HOST_PTR`, which the worker makes
/// a copy): the buffer is created without data, then written in pieces
/// through a queue of its own on the context's first device, which is
/// finished and released before the buffer is returned. Buffers the host
/// may not write (`CL_MEM_HOST_NO_ACCESS`, `CL_MEM_HOST_READ_ONLY`) take the
/// ordinary path.
///
/// # Safety
/// OpenCL's contract: `host_ptr` is NULL or points to `size` readable
/// bytes; `errcode_ret` is NULL or writable.
pub unsafe fn create_buffer(
    context: opencl::cl_context,
    flags: opencl::cl_mem_flags,
    size: usize,
    host_ptr: *mut std::ffi::c_void,
    errcode_ret: *mut cl_int,
) -> Option<cl_mem> {
    if crate::recorded::passing() {
        return None;
    }
    // Made (in pieces if need be, or by the ordinary call), then recorded.
    // SAFETY: the caller's arguments, passed on.
    Some(unsafe { crate::recorded::create_and_record(context, flags, size, host_ptr, errcode_ret) })
}

/// Runs `work` on a command queue of its own on `context`'s first device,
/// then finishes and releases the queue: `work`'s error, or the first
/// error of getting the device, making the queue or finishing it.
pub(crate) fn on_own_queue(
    context: opencl::cl_context,
    work: impl FnOnce(cl_command_queue) -> cl_int,
) -> cl_int {
    let mut device: opencl::cl_device_id = std::ptr::null_mut();
    // SAFETY: `device` is a live local for the first device of the list
    // (the query returns as many as fit).
    let rc = unsafe {
        opencl::clGetContextInfo(
            context,
            opencl::CL_CONTEXT_DEVICES,
            size_of::<opencl::cl_device_id>(),
            (&mut device as *mut opencl::cl_device_id).cast(),
            std::ptr::null_mut(),
        )
    };
    if rc != opencl::CL_SUCCESS {
        return rc;
    }
    let mut err = 0;
    // SAFETY: a live context and device; `err` is a live local.
    let queue = unsafe { opencl::clCreateCommandQueue(context, device, 0, &mut err) };
    if queue.is_null() {
        return err;
    }
    let mut rc = work(queue);
    if rc == opencl::CL_SUCCESS {
        // SAFETY: a live queue.
        rc = unsafe { opencl::clFinish(queue) };
    }
    // SAFETY: the queue made here, used no more.
    unsafe { opencl::clReleaseCommandQueue(queue) };
    rc
}

/// The part of [`create_buffer`] for initial data larger than a piece.
///
/// # Safety
/// As for [`create_buffer`].
pub(crate) unsafe fn create_in_pieces(
    context: opencl::cl_context,
    flags: opencl::cl_mem_flags,
    size: usize,
    host_ptr: *mut std::ffi::c_void,
    errcode_ret: *mut cl_int,
) -> Option<cl_mem> {
    let data = opencl::CL_MEM_COPY_HOST_PTR | opencl::CL_MEM_USE_HOST_PTR;
    let no_write = opencl::CL_MEM_HOST_NO_ACCESS | opencl::CL_MEM_HOST_READ_ONLY;
    if host_ptr.is_null() || flags & data == 0 || flags & no_write != 0 {
        return None;
    }
    let conn = remoting::guest::connection(&crate::opencl::API, crate::locate_region).ok()?;
    if size <= (conn.arena_size() / 4).max(1) {
        return None;
    }
    let fail = |rc: cl_int| {
        if !errcode_ret.is_null() {
            // SAFETY: the caller's contract.
            unsafe { *errcode_ret = rc };
        }
        Some(std::ptr::null_mut())
    };
    let mut err = 0;
    let plain = flags & !data;
    // SAFETY: no host pointer; `err` is a live local.
    let mem =
        unsafe { opencl::clCreateBuffer(context, plain, size, std::ptr::null_mut(), &mut err) };
    if mem.is_null() {
        return fail(err);
    }
    let rc = on_own_queue(context, |queue| {
        // SAFETY: `host_ptr` holds `size` bytes (the caller's contract).
        unsafe {
            opencl::clEnqueueWriteBuffer(
                queue,
                mem,
                1,
                0,
                size,
                host_ptr,
                0,
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        }
    });
    if rc != opencl::CL_SUCCESS {
        // SAFETY: the buffer made here, never returned.
        unsafe { opencl::clReleaseMemObject(mem) };
        return fail(rc);
    }
    tracing::debug!(size, "buffer created, then filled in pieces");
    if !errcode_ret.is_null() {
        // SAFETY: the caller's contract.
        unsafe { *errcode_ret = opencl::CL_SUCCESS };
    }
    Some(mem)
}

pub use crate::checks::{
    barrier_with_wait_list, copy_buffer, copy_buffer_rect, copy_buffer_to_image, copy_image,
    copy_image_to_buffer, marker_with_wait_list, task, write_buffer_rect,
};
pub use crate::icd::{extension_function_address, extension_function_address_for_platform};
pub use crate::images::{
    create_image, create_image_2d, create_image_3d, create_image_with_properties, read_image,
    write_image,
};
pub use crate::mapping::{map_buffer, map_image, unmap_mem_object};
pub use crate::native_kernel::native_kernel;
pub use crate::recorded::{
    clone_kernel, context_info, create_buffer_with_properties, create_context,
    create_context_from_type, create_kernel, create_sub_buffer, event_info, launch_args_set,
    mem_object_info, release_event, set_kernel_arg, set_kernel_arg_svm_pointer,
};
pub use crate::svm::{svm_alloc, svm_enqueue_free, svm_free, svm_memcpy, svm_migrate};

/// `clGetProgramInfo(CL_PROGRAM_BINARIES)`: the answer is an array of
/// pointers to the application's buffers, one per device of the program,
/// each filled with that device's binary (`avaProgramBinary`); NULL entries
/// are skipped, as natively. Other parameters take the ordinary path.
///
/// # Safety
/// OpenCL's contract: `param_value` is NULL or holds `param_value_size`
/// bytes, here an array of pointers each NULL or holding that device's
/// binary size; `param_value_size_ret` is NULL or writable.
pub unsafe fn program_info(
    program: opencl::cl_program,
    param_name: opencl::cl_program_info,
    param_value_size: usize,
    param_value: *mut std::ffi::c_void,
    param_value_size_ret: *mut usize,
) -> Option<cl_int> {
    if param_name != opencl::CL_PROGRAM_BINARIES {
        return None;
    }
    let mut n: cl_uint = 0;
    // SAFETY: `n` is a live cl_uint for the query's one output.
    let rc = unsafe {
        opencl::clGetProgramInfo(
            program,
            opencl::CL_PROGRAM_NUM_DEVICES,
            size_of::<cl_uint>(),
            (&mut n as *mut cl_uint).cast(),
            std::ptr::null_mut(),
        )
    };
    if rc != opencl::CL_SUCCESS {
        return Some(rc);
    }
    let n = n as usize;
    let needed = n * size_of::<*mut u8>();
    if !param_value_size_ret.is_null() {
        // SAFETY: the caller's contract.
        unsafe { *param_value_size_ret = needed };
    }
    if param_value.is_null() {
        return Some(opencl::CL_SUCCESS);
    }
    if param_value_size < needed {
        return Some(opencl::CL_INVALID_VALUE);
    }
    let mut sizes = vec![0usize; n];
    // SAFETY: `sizes` holds `n` size_t, the size passed.
    let rc = unsafe {
        opencl::clGetProgramInfo(
            program,
            opencl::CL_PROGRAM_BINARY_SIZES,
            n * size_of::<usize>(),
            sizes.as_mut_ptr().cast(),
            std::ptr::null_mut(),
        )
    };
    if rc != opencl::CL_SUCCESS {
        return Some(rc);
    }
    for (i, &size) in sizes.iter().enumerate() {
        // SAFETY: the caller's array holds `n` pointers (checked above).
        let dst = unsafe { *param_value.cast::<*mut u8>().add(i) };
        if dst.is_null() || size == 0 {
            continue;
        }
        // SAFETY: the caller's contract: `dst` holds that device's binary
        // size.
        let rc = unsafe { opencl::avaProgramBinary(program, i as cl_uint, size, dst.cast()) };
        if rc != opencl::CL_SUCCESS {
            return Some(rc);
        }
    }
    Some(opencl::CL_SUCCESS)
}

/// `clCreateSubDevices`: the property list is measured by its own rules
/// (`CL_DEVICE_PARTITION_BY_COUNTS` lists counts up to a 0, then the final
/// 0; the other partition types take one value, then the final 0) and sent
/// with its length (`avaCreateSubDevices`). A list longer than 256 entries
/// takes the ordinary path (reported unsupported).
///
/// # Safety
/// OpenCL's contract: `properties` is NULL or a partition property list;
/// `out_devices` is NULL or holds `num_devices`; `num_devices_ret` is NULL
/// or writable.
pub unsafe fn create_sub_devices(
    in_device: opencl::cl_device_id,
    properties: *const opencl::cl_device_partition_property,
    num_devices: cl_uint,
    out_devices: *mut opencl::cl_device_id,
    num_devices_ret: *mut cl_uint,
) -> Option<cl_int> {
    if properties.is_null() {
        return Some(opencl::CL_INVALID_VALUE);
    }
    let at = |i: usize| {
        // SAFETY: read only up to the list's end, by its rules below.
        unsafe { *properties.add(i) }
    };
    let len = match at(0) {
        0 => 1,
        p if p == opencl::CL_DEVICE_PARTITION_BY_COUNTS => {
            let mut i = 1;
            while i < 255 && at(i) != 0 {
                i += 1;
            }
            if i >= 255 {
                return None;
            }
            // The counts' 0, then the list's.
            i + 2
        }
        // CL_DEVICE_PARTITION_EQUALLY, CL_DEVICE_PARTITION_BY_AFFINITY_DOMAIN
        // (and anything else, which the driver refuses): one value, then 0.
        _ => 3,
    };
    // SAFETY: the list holds `len` entries, measured above.
    Some(unsafe {
        opencl::avaCreateSubDevices(
            in_device,
            len as cl_uint,
            properties,
            num_devices,
            out_devices,
            num_devices_ret,
        )
    })
}
