//! `CL_MEM_USE_HOST_PTR` keeps its meaning for the application: the
//! worker's buffer is a copy (the guest's memory is not the worker's), but
//! the guest library records the application's pointer and flags, so that
//! `clGetMemObjectInfo` answers `CL_MEM_HOST_PTR` and `CL_MEM_FLAGS` as
//! natively, and mapping such a buffer returns `host_ptr + offset` with the
//! buffer's bytes copied there first (and written back at unmap), which is
//! where the OpenCL specification says the contents are after a map.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::opencl::{self, cl_int, cl_mem};

/// What the application gave when it created a buffer over its own memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostBuffer {
    /// The application's `host_ptr`.
    pub host_ptr: usize,
    /// The flags it passed.
    pub flags: opencl::cl_mem_flags,
}

static HOST_BUFFERS: Mutex<Option<HashMap<usize, HostBuffer>>> = Mutex::new(None);

thread_local! {
    /// Set while a fast path makes the call it stands for: the nested call
    /// takes the ordinary path.
    static PASSING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (which calls the function whose fast path is running) with
/// fast paths passed over.
pub(crate) fn passing_through<R>(f: impl FnOnce() -> R) -> R {
    PASSING.with(|p| p.set(true));
    let r = f();
    PASSING.with(|p| p.set(false));
    r
}

/// Whether the running call was made by a fast path for itself.
pub(crate) fn passing() -> bool {
    PASSING.with(Cell::get)
}

/// The record of `mem`, if the application created it over its memory.
pub(crate) fn host_buffer(mem: cl_mem) -> Option<HostBuffer> {
    HOST_BUFFERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()?
        .get(&(mem as usize))
        .copied()
}

/// `clCreateBuffer` with `CL_MEM_USE_HOST_PTR`: made (the worker copies the
/// data), then recorded.
///
/// # Safety
/// OpenCL's contract: `host_ptr` points to `size` bytes that stay valid
/// while the buffer lives; `errcode_ret` is NULL or writable.
pub(crate) unsafe fn create_over_host_memory(
    context: opencl::cl_context,
    flags: opencl::cl_mem_flags,
    size: usize,
    host_ptr: *mut std::ffi::c_void,
    errcode_ret: *mut cl_int,
) -> cl_mem {
    // SAFETY: the caller's arguments, passed on.
    let mem = match unsafe {
        crate::fast_paths::create_in_pieces(context, flags, size, host_ptr, errcode_ret)
    } {
        Some(mem) => mem,
        // SAFETY: as above.
        None => passing_through(|| unsafe {
            opencl::clCreateBuffer(context, flags, size, host_ptr, errcode_ret)
        }),
    };
    if !mem.is_null() {
        HOST_BUFFERS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(
                mem as usize,
                HostBuffer {
                    host_ptr: host_ptr as usize,
                    flags,
                },
            );
    }
    mem
}

/// `clGetMemObjectInfo` of `CL_MEM_HOST_PTR` and `CL_MEM_FLAGS` for a
/// buffer created over the application's memory; `None` for anything else.
///
/// # Safety
/// OpenCL's contract: `param_value` is NULL or holds `param_value_size`
/// writable bytes; `param_value_size_ret` is NULL or writable.
pub unsafe fn mem_object_info(
    memobj: cl_mem,
    param_name: opencl::cl_mem_info,
    param_value_size: usize,
    param_value: *mut std::ffi::c_void,
    param_value_size_ret: *mut usize,
) -> Option<cl_int> {
    let value = match param_name {
        opencl::CL_MEM_HOST_PTR => host_buffer(memobj)?.host_ptr as u64,
        opencl::CL_MEM_FLAGS => host_buffer(memobj)?.flags,
        _ => return None,
    };
    if !param_value.is_null() {
        if param_value_size < size_of::<u64>() {
            return Some(opencl::CL_INVALID_VALUE);
        }
        // SAFETY: the caller's contract; checked to hold 8 bytes.
        unsafe { param_value.cast::<u64>().write_unaligned(value) };
    }
    if !param_value_size_ret.is_null() {
        // SAFETY: the caller's contract.
        unsafe { *param_value_size_ret = size_of::<u64>() };
    }
    Some(opencl::CL_SUCCESS)
}
