//! Shared virtual memory (OpenCL SVM) on a CPU device, in the region's
//! heap: the worker's side of `avaSvmAlloc` / `avaSvmFree` and the guards
//! of every call that passes SVM pointers (see `specs/opencl.lapis`).
//!
//! An allocation is heap storage seen through the heap's second view,
//! which the worker and each guest process map at one address
//! ([`transport::SVM_HINTS`]), so that a pointer means the same bytes on
//! both sides, inside application data too. Every pointer a guest passes
//! must lie inside an SVM allocation of its own region, since the device
//! (code in this process) follows it; anything else is `CL_INVALID_VALUE`
//! and reaches no driver. A context's allocations are freed when the
//! driver destroys the context (a destructor callback), so a guest that
//! dies leaves none behind. Allocations count against the VM's memory
//! quota, as buffers do.

use std::ffi::c_void;
use std::sync::Arc;

use remoting::heap::Heap;
use remoting::worker::{Admission, CallCtx, Caller, DispatchError};
use server::policy::resource;

use crate::opencl::{self, Api, cl_kernel, cl_uint};

/// `cl_svm_mem_flags` bits a CPU device takes.
const KNOWN_FLAGS: u64 = opencl::CL_MEM_READ_WRITE
    | opencl::CL_MEM_WRITE_ONLY
    | opencl::CL_MEM_READ_ONLY
    | opencl::CL_MEM_SVM_FINE_GRAIN_BUFFER
    | opencl::CL_MEM_SVM_ATOMICS;

fn invalid() -> DispatchError {
    DispatchError::Api(opencl::CL_INVALID_VALUE.into())
}

/// The region's heap, for a call that names SVM pointers.
fn heap<'a>(cx: &'a CallCtx<'_>) -> Result<&'a Arc<Heap>, DispatchError> {
    cx.session.heap.as_ref().ok_or_else(invalid)
}

/// `ptr` is not NULL and `[ptr, ptr + len)` lies inside one SVM
/// allocation of this region.
fn range(cx: &CallCtx<'_>, ptr: *const c_void, len: usize) -> Result<(), DispatchError> {
    if ptr.is_null() {
        return Err(invalid());
    }
    inside(cx, ptr as usize, len)
}

/// `[addr, addr + len)` lies inside one SVM allocation of this region.
fn inside(cx: &CallCtx<'_>, addr: usize, len: usize) -> Result<(), DispatchError> {
    heap(cx)?
        .svm_find(addr, len)
        .map(|_| ())
        .ok_or_else(invalid)
}

/// What a context's end must undo: its allocations in the heap, and
/// their charge to the VM.
struct Watch {
    heap: Arc<Heap>,
    quota: Option<(Arc<dyn Admission>, Caller)>,
}

/// The VM's memory accounting, when the worker schedules it.
fn quota(cx: &CallCtx<'_>) -> Option<(Arc<dyn Admission>, Caller)> {
    cx.session
        .admission
        .clone()
        .map(|a| (a, cx.session.caller.clone()))
}

/// Credits `bytes` of memory back to the VM.
fn credit(quota: Option<&(Arc<dyn Admission>, Caller)>, bytes: u64) {
    if let Some((admission, caller)) = quota
        && bytes > 0
    {
        admission.charge(caller, resource::MEMORY, -(bytes as i64));
    }
}

/// Frees a context's SVM allocations when the driver destroys it.
unsafe extern "C" fn context_gone(context: opencl::cl_context, user_data: *mut c_void) {
    if user_data.is_null() {
        return;
    }
    // SAFETY: `svm_alloc` passed a leaked `Box<Watch>`, and the driver
    // calls a destructor callback once.
    let w = unsafe { Box::from_raw(user_data.cast::<Watch>()) };
    let (n, bytes) = w.heap.svm_free_all(context as u64);
    credit(w.quota.as_ref(), bytes);
    if n > 0 {
        tracing::debug!(n, bytes, "freed the SVM allocations of a destroyed context");
    }
}

/// `avaSvmAlloc` (behind `clSVMAlloc`).
///
/// # Safety
/// `view_base` and `heap_offset` are NULL or writable (the dispatcher's
/// guarantee); `context` is a live context of this guest.
#[allow(clippy::too_many_arguments)]
pub unsafe fn svm_alloc(
    api: &Api,
    cx: &mut CallCtx<'_>,
    context: opencl::cl_context,
    flags: opencl::cl_svm_mem_flags,
    size: usize,
    alignment: cl_uint,
    view_base: *mut opencl::cl_ulong,
    heap_offset: *mut opencl::cl_ulong,
) -> Result<opencl::cl_int, DispatchError> {
    if view_base.is_null() || heap_offset.is_null() {
        return Err(DispatchError::Protocol(
            "avaSvmAlloc without outputs".into(),
        ));
    }
    let access =
        flags & (opencl::CL_MEM_READ_WRITE | opencl::CL_MEM_WRITE_ONLY | opencl::CL_MEM_READ_ONLY);
    if size == 0
        || flags & !KNOWN_FLAGS != 0
        || access.count_ones() > 1
        || (flags & opencl::CL_MEM_SVM_ATOMICS != 0
            && flags & opencl::CL_MEM_SVM_FINE_GRAIN_BUFFER == 0)
        || (alignment != 0 && !alignment.is_power_of_two())
        || u64::from(alignment) > remoting::heap::HEAP_ALIGN
    {
        return Ok(opencl::CL_INVALID_VALUE);
    }
    let Some(heap) = cx.session.heap.clone() else {
        return Ok(opencl::CL_OUT_OF_RESOURCES);
    };
    if !crate::guards::cpu_context(api, context) {
        return Ok(opencl::CL_OUT_OF_RESOURCES);
    }
    let tag = context as u64;
    let quota = quota(cx);
    if heap.svm_watch(tag) {
        let user_data = Box::into_raw(Box::new(Watch {
            heap: heap.clone(),
            quota: quota.clone(),
        }));
        let rc = match api.clSetContextDestructorCallback {
            // SAFETY: a live context; `context_gone` takes back the box once.
            Some(set) => unsafe { set(context, Some(context_gone), user_data.cast()) },
            None => opencl::CL_INVALID_OPERATION,
        };
        if rc != 0 {
            // SAFETY: the driver did not take the box.
            drop(unsafe { Box::from_raw(user_data) });
            // Forgets the watch: no allocation of the context exists yet.
            heap.svm_free_all(tag);
            tracing::warn!(rc, "no context destructor callback: SVM is not offered");
            return Ok(opencl::CL_OUT_OF_RESOURCES);
        }
    }
    if let Some((admission, caller)) = &quota
        && !admission.charge(caller, resource::MEMORY, size as i64)
    {
        tracing::debug!(vm = %caller.vm, size, "SVM allocation refused: memory quota");
        return Ok(opencl::CL_OUT_OF_RESOURCES);
    }
    match heap.svm_alloc(size as u64, u64::from(alignment), tag) {
        Ok((base, offset)) => {
            // SAFETY: both outputs are writable (checked above).
            unsafe {
                *view_base = base as u64;
                *heap_offset = offset;
            }
            Ok(opencl::CL_SUCCESS)
        }
        Err(e) => {
            credit(quota.as_ref(), size as u64);
            tracing::debug!(size, "clSVMAlloc: {e}");
            Ok(opencl::CL_OUT_OF_RESOURCES)
        }
    }
}

/// `avaSvmFree` (behind `clSVMFree`).
///
/// # Safety
/// `context` is a live context of this guest.
pub unsafe fn svm_free(
    _api: &Api,
    cx: &mut CallCtx<'_>,
    context: opencl::cl_context,
    address: opencl::cl_ulong,
) -> Result<opencl::cl_int, DispatchError> {
    let freed = cx
        .session
        .heap
        .as_ref()
        .and_then(|h| h.svm_free(address as usize, context as u64));
    match freed {
        Some(len) => {
            credit(quota(cx).as_ref(), len);
            Ok(opencl::CL_SUCCESS)
        }
        None => Ok(opencl::CL_INVALID_VALUE),
    }
}

/// `clSetKernelArgSVMPointer`: NULL or a pointer inside an SVM allocation.
///
/// # Safety
/// None beyond the dispatcher's: the pointer is only compared.
pub unsafe fn svm_kernel_arg(
    _api: &Api,
    cx: &CallCtx<'_>,
    _kernel: cl_kernel,
    _arg_index: cl_uint,
    arg_value: *const c_void,
) -> Result<(), DispatchError> {
    if arg_value.is_null() {
        return Ok(());
    }
    inside(cx, arg_value as usize, 0)
}

/// `clSetKernelExecInfo`: every pointer of `CL_KERNEL_EXEC_INFO_SVM_PTRS`
/// inside an SVM allocation; other names (`..._SVM_FINE_GRAIN_SYSTEM`, a
/// vendor's) reach the driver, which answers as it does natively.
///
/// # Safety
/// `param_value` holds `param_value_size` readable bytes (the dispatcher's
/// guarantee).
pub unsafe fn svm_exec_info(
    _api: &Api,
    cx: &CallCtx<'_>,
    _kernel: cl_kernel,
    param_name: opencl::cl_kernel_exec_info,
    param_value_size: usize,
    param_value: *const c_void,
) -> Result<(), DispatchError> {
    match param_name {
        opencl::CL_KERNEL_EXEC_INFO_SVM_PTRS => {
            let n = param_value_size / size_of::<usize>();
            if param_value.is_null()
                || n == 0
                || !param_value_size.is_multiple_of(size_of::<usize>())
            {
                return Err(invalid());
            }
            for i in 0..n {
                // SAFETY: `param_value` holds `n` pointer-sized values
                // (checked above), possibly unaligned.
                let p = unsafe { std::ptr::read_unaligned(param_value.cast::<usize>().add(i)) };
                inside(cx, p, 0)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `clEnqueueSVMMemcpy` made by the worker: both ranges inside SVM
/// allocations.
///
/// # Safety
/// The pointers are only compared.
#[allow(clippy::too_many_arguments)]
pub unsafe fn svm_memcpy(
    _api: &Api,
    cx: &CallCtx<'_>,
    _queue: opencl::cl_command_queue,
    _blocking: opencl::cl_bool,
    dst_ptr: *mut c_void,
    src_ptr: *const c_void,
    size: usize,
    _n: cl_uint,
    _wait: *const opencl::cl_event,
    _event: *mut opencl::cl_event,
) -> Result<(), DispatchError> {
    range(cx, dst_ptr, size)?;
    range(cx, src_ptr, size)
}

/// `clEnqueueSVMMemFill`: the range inside an SVM allocation.
///
/// # Safety
/// The pointer is only compared.
#[allow(clippy::too_many_arguments)]
pub unsafe fn svm_fill(
    _api: &Api,
    cx: &CallCtx<'_>,
    _queue: opencl::cl_command_queue,
    svm_ptr: *mut c_void,
    _pattern: *const c_void,
    _pattern_size: usize,
    size: usize,
    _n: cl_uint,
    _wait: *const opencl::cl_event,
    _event: *mut opencl::cl_event,
) -> Result<(), DispatchError> {
    range(cx, svm_ptr, size)
}

/// `clEnqueueSVMMap`: the range inside an SVM allocation.
///
/// # Safety
/// The pointer is only compared.
#[allow(clippy::too_many_arguments)]
pub unsafe fn svm_map(
    _api: &Api,
    cx: &CallCtx<'_>,
    _queue: opencl::cl_command_queue,
    _blocking: opencl::cl_bool,
    _flags: opencl::cl_map_flags,
    svm_ptr: *mut c_void,
    size: usize,
    _n: cl_uint,
    _wait: *const opencl::cl_event,
    _event: *mut opencl::cl_event,
) -> Result<(), DispatchError> {
    range(cx, svm_ptr, size)
}

/// `clEnqueueSVMUnmap`: a pointer inside an SVM allocation.
///
/// # Safety
/// The pointer is only compared.
pub unsafe fn svm_unmap(
    _api: &Api,
    cx: &CallCtx<'_>,
    _queue: opencl::cl_command_queue,
    svm_ptr: *mut c_void,
    _n: cl_uint,
    _wait: *const opencl::cl_event,
    _event: *mut opencl::cl_event,
) -> Result<(), DispatchError> {
    range(cx, svm_ptr, 0)
}
