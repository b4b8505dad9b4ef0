//! Shared virtual memory (OpenCL SVM), made by the guest library on top of
//! the region's heap (see `specs/opencl.lapis` and `worker/src/svm.rs`).
//!
//! `clSVMAlloc` asks the worker for heap storage (`avaSvmAlloc`), which the
//! worker sees through a second view of the heap at an address it chose;
//! this process maps its own view of the heap at that same address, once,
//! so that the pointer the application gets — and stores in its data,
//! where kernels follow it — names the same bytes here and on the device.
//! Both views are the region's shared memory: no copy is ever made.
//!
//! When the view cannot be made (no heap, a device that is not a CPU, the
//! address already taken in this process), `clSVMAlloc` returns NULL, as
//! the driver does when it cannot allocate, and logs why.
//!
//! Copies with a side in the application's own memory, `clEnqueueSVMFree`
//! and `clEnqueueSVMMigrateMem` are made here: a marker waits for the
//! wait list (and earlier commands), then the guest does the work; the
//! event the application gets is the marker's, answering the SVM
//! command's type.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Mutex;

use crate::opencl::{self, cl_bool, cl_command_queue, cl_context, cl_event, cl_int, cl_uint};

/// This process's SVM state.
struct State {
    /// Its view of the heap, once made.
    view: Option<transport::HeapView>,
    /// Live allocations: start → (length, context).
    allocs: BTreeMap<usize, (usize, usize)>,
}

static STATE: Mutex<State> = Mutex::new(State {
    view: None,
    allocs: BTreeMap::new(),
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `[p, p + len)` lies inside one allocation of this process.
fn known(p: usize, len: usize) -> bool {
    let s = state();
    s.allocs
        .range(..=p)
        .next_back()
        .is_some_and(|(&start, &(size, _))| p.checked_add(len).is_some_and(|e| e <= start + size))
}

/// `clSVMAlloc`.
///
/// # Safety
/// None beyond OpenCL's: the arguments are values.
pub unsafe fn svm_alloc(
    context: cl_context,
    flags: opencl::cl_svm_mem_flags,
    size: usize,
    alignment: cl_uint,
) -> Option<*mut c_void> {
    let null = Some(std::ptr::null_mut());
    let conn = match remoting::guest::connection(&opencl::API, crate::locate_region) {
        Ok(c) => c,
        Err(_) => return null,
    };
    if conn.heap().size() == 0 {
        tracing::warn!("clSVMAlloc: the region has no heap, so no shared virtual memory");
        return null;
    }
    let (mut base, mut offset) = (0u64, 0u64);
    // SAFETY: two live u64 outputs.
    let rc =
        unsafe { opencl::avaSvmAlloc(context, flags, size, alignment, &mut base, &mut offset) };
    if rc != opencl::CL_SUCCESS {
        tracing::debug!(rc, size, "clSVMAlloc: refused by the worker");
        return null;
    }
    let (base, addr) = (base as usize, (base + offset) as usize);
    let mut s = state();
    if s.view.as_ref().is_some_and(|v| v.base() != base) && s.allocs.is_empty() {
        // A new worker chose another address: the old view is unused.
        s.view = None;
    }
    if s.view.is_none() {
        match conn.heap().map_at(base) {
            Ok(v) => s.view = Some(v),
            Err(e) => {
                tracing::warn!("clSVMAlloc: cannot map the heap where the worker sees it: {e}")
            }
        }
    } else if !s.view.as_ref().is_some_and(|v| v.contains(addr, size)) {
        tracing::warn!("clSVMAlloc: the worker's heap view moved; no shared virtual memory");
    }
    if s.view.as_ref().is_none_or(|v| !v.contains(addr, size)) {
        drop(s);
        // SAFETY: the allocation just made, which nothing uses.
        unsafe { opencl::avaSvmFree(context, addr as u64) };
        return null;
    }
    s.allocs.insert(addr, (size, context as usize));
    Some(addr as *mut c_void)
}

/// `clSVMFree`: a pointer this process allocated (others are ignored, as
/// the driver's undefined behaviour allows).
///
/// # Safety
/// None beyond OpenCL's.
pub unsafe fn svm_free(context: cl_context, svm_pointer: *mut c_void) -> Option<()> {
    let p = svm_pointer as usize;
    let removed = state().allocs.remove(&p);
    if removed.is_some() {
        // SAFETY: an allocation of this process, given back.
        unsafe { opencl::avaSvmFree(context, p as u64) };
    }
    Some(())
}

/// A marker for the wait list (and every earlier command of the queue),
/// waited for: the marker's event, or the error.
pub(crate) fn wait_marker(
    queue: cl_command_queue,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
) -> Result<cl_event, cl_int> {
    let mut ev: cl_event = std::ptr::null_mut();
    // SAFETY: the application's wait list, passed on; `ev` is a live output.
    let rc = unsafe {
        opencl::clEnqueueMarkerWithWaitList(
            queue,
            num_events_in_wait_list,
            event_wait_list,
            &mut ev,
        )
    };
    if rc != opencl::CL_SUCCESS {
        return Err(rc);
    }
    // SAFETY: one live event.
    let rc = unsafe { opencl::clWaitForEvents(1, &ev) };
    if rc != opencl::CL_SUCCESS {
        // SAFETY: the marker's event, ours to release.
        unsafe { opencl::clReleaseEvent(ev) };
        return Err(rc);
    }
    Ok(ev)
}

/// Hands the marker's event to the application as the event of a
/// `command` command, or releases it.
pub(crate) fn give_event(ev: cl_event, event: *mut cl_event, command: opencl::cl_command_type) {
    if event.is_null() {
        // SAFETY: the marker's event, ours to release.
        unsafe { opencl::clReleaseEvent(ev) };
    } else {
        // SAFETY: OpenCL's contract: `event` is writable.
        unsafe { *event = ev };
        crate::recorded::name_command(event, opencl::CL_SUCCESS, command);
    }
}

/// `clEnqueueSVMMemcpy` with a side in the application's own memory:
/// made here (both sides in SVM allocations: the worker's call).
///
/// # Safety
/// OpenCL's contract: `dst_ptr` and `src_ptr` hold `size` bytes; the wait
/// list holds `num_events_in_wait_list` events; `event` is NULL or writable.
#[allow(clippy::too_many_arguments)]
pub unsafe fn svm_memcpy(
    command_queue: cl_command_queue,
    _blocking_copy: cl_bool,
    dst_ptr: *mut c_void,
    src_ptr: *const c_void,
    size: usize,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> Option<cl_int> {
    if dst_ptr.is_null() || src_ptr.is_null() {
        return Some(opencl::CL_INVALID_VALUE);
    }
    let (d, s) = (dst_ptr as usize, src_ptr as usize);
    if known(d, size) && known(s, size) {
        return None;
    }
    if d < s.saturating_add(size) && s < d.saturating_add(size) {
        return Some(opencl::CL_MEM_COPY_OVERLAP);
    }
    let ev = match wait_marker(command_queue, num_events_in_wait_list, event_wait_list) {
        Ok(ev) => ev,
        Err(e) => return Some(e),
    };
    // SAFETY: OpenCL's contract: both hold `size` bytes, and they do not
    // overlap (checked above); SVM memory is mapped in this process.
    unsafe { std::ptr::copy_nonoverlapping(src_ptr.cast::<u8>(), dst_ptr.cast::<u8>(), size) };
    give_event(ev, event, opencl::CL_COMMAND_SVM_MEMCPY);
    Some(opencl::CL_SUCCESS)
}

/// `clEnqueueSVMFree`.
///
/// # Safety
/// OpenCL's contract: `svm_pointers` holds `num_svm_pointers` pointers; the
/// wait list holds `num_events_in_wait_list` events; `event` is NULL or
/// writable.
#[allow(clippy::too_many_arguments)]
pub unsafe fn svm_enqueue_free(
    command_queue: cl_command_queue,
    num_svm_pointers: cl_uint,
    svm_pointers: *mut *mut c_void,
    pfn_free_func: opencl::pfn_svm_free,
    user_data: *mut c_void,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> Option<cl_int> {
    if num_svm_pointers == 0 || svm_pointers.is_null() {
        return Some(opencl::CL_INVALID_VALUE);
    }
    let ev = match wait_marker(command_queue, num_events_in_wait_list, event_wait_list) {
        Ok(ev) => ev,
        Err(e) => return Some(e),
    };
    match pfn_free_func {
        // SAFETY: the application's callback with its own arguments.
        Some(f) => unsafe { f(command_queue, num_svm_pointers, svm_pointers, user_data) },
        None => {
            for i in 0..num_svm_pointers as usize {
                // SAFETY: OpenCL's contract: `num_svm_pointers` pointers.
                let p = unsafe { *svm_pointers.add(i) };
                let ctx = state().allocs.get(&(p as usize)).map(|&(_, c)| c);
                if let Some(c) = ctx {
                    // SAFETY: an allocation of this process.
                    unsafe { svm_free(c as cl_context, p) };
                }
            }
        }
    }
    give_event(ev, event, opencl::CL_COMMAND_SVM_FREE);
    Some(opencl::CL_SUCCESS)
}

/// `clEnqueueSVMMigrateMem`: the pointers checked, then a marker (nothing
/// moves: the device shares this memory).
///
/// # Safety
/// OpenCL's contract: `svm_pointers` holds `num_svm_pointers` pointers and
/// `sizes` is NULL or holds as many sizes; the wait list holds
/// `num_events_in_wait_list` events; `event` is NULL or writable.
#[allow(clippy::too_many_arguments)]
pub unsafe fn svm_migrate(
    command_queue: cl_command_queue,
    num_svm_pointers: cl_uint,
    svm_pointers: *mut *const c_void,
    sizes: *const usize,
    flags: opencl::cl_mem_migration_flags,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> Option<cl_int> {
    let known_flags =
        opencl::CL_MIGRATE_MEM_OBJECT_HOST | opencl::CL_MIGRATE_MEM_OBJECT_CONTENT_UNDEFINED;
    if num_svm_pointers == 0 || svm_pointers.is_null() || flags & !known_flags != 0 {
        return Some(opencl::CL_INVALID_VALUE);
    }
    for i in 0..num_svm_pointers as usize {
        // SAFETY: OpenCL's contract: `num_svm_pointers` pointers and sizes.
        let (p, len) = unsafe {
            (
                *svm_pointers.add(i) as usize,
                if sizes.is_null() { 0 } else { *sizes.add(i) },
            )
        };
        if p == 0 || !known(p, len) {
            return Some(opencl::CL_INVALID_VALUE);
        }
    }
    // SAFETY: the application's wait list and event pointer, passed on.
    let rc = unsafe {
        opencl::clEnqueueMarkerWithWaitList(
            command_queue,
            num_events_in_wait_list,
            event_wait_list,
            event,
        )
    };
    crate::recorded::name_command(event, rc, opencl::CL_COMMAND_SVM_MIGRATE_MEM);
    Some(rc)
}
