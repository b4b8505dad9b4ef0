//! `clEnqueueNativeKernel`, made by the guest library: a native kernel is
//! a function of the application's own process, which the device runs on
//! a copy of its arguments in which the addresses of the given memory
//! objects are replaced by pointers to their contents. Remoted, the
//! function runs here, in the application's process: once the wait list
//! (and every earlier command) has completed, each memory object is mapped
//! for reading and writing, its mapped pointer is written into the copy of
//! the arguments where the application said, the function runs, and the
//! objects are unmapped (written back) before the call returns. The event
//! is a marker's that answers `CL_COMMAND_NATIVE_KERNEL`.

use std::ffi::c_void;

use crate::opencl::{self, cl_command_queue, cl_event, cl_int, cl_mem, cl_uint};

/// `clEnqueueNativeKernel`.
///
/// # Safety
/// OpenCL's contract: `args` holds `cb_args` bytes; `mem_list` and
/// `args_mem_loc` hold `num_mem_objects` entries, each location inside
/// `args`; the wait list holds `num_events_in_wait_list` events; `event` is
/// NULL or writable; `user_func` may be called with the copy.
#[allow(clippy::too_many_arguments)]
pub unsafe fn native_kernel(
    command_queue: cl_command_queue,
    user_func: opencl::pfn_native_kernel,
    args: *mut c_void,
    cb_args: usize,
    num_mem_objects: cl_uint,
    mem_list: *const cl_mem,
    args_mem_loc: *mut *const c_void,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> Option<cl_int> {
    let n = num_mem_objects as usize;
    let Some(func) = user_func else {
        return Some(opencl::CL_INVALID_VALUE);
    };
    if (args.is_null() && (cb_args > 0 || n > 0))
        || (!args.is_null() && cb_args == 0)
        || (n > 0 && (mem_list.is_null() || args_mem_loc.is_null()))
        || (n == 0 && (!mem_list.is_null() || !args_mem_loc.is_null()))
    {
        return Some(opencl::CL_INVALID_VALUE);
    }
    // The copy of the arguments, aligned for any field.
    let mut copy = vec![0u64; cb_args.div_ceil(8)];
    if cb_args > 0 {
        // SAFETY: OpenCL's contract: `args` holds `cb_args` bytes; the copy
        // holds at least as many.
        unsafe {
            std::ptr::copy_nonoverlapping(args.cast::<u8>(), copy.as_mut_ptr().cast(), cb_args)
        };
    }
    // Where each object's pointer goes in the copy.
    let mut places = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: OpenCL's contract: `n` locations and objects.
        let (loc, mem) = unsafe { (*args_mem_loc.add(i) as usize, *mem_list.add(i)) };
        let off = loc.wrapping_sub(args as usize);
        if mem.is_null() {
            return Some(opencl::CL_INVALID_MEM_OBJECT);
        }
        if loc < args as usize || off + size_of::<usize>() > cb_args {
            return Some(opencl::CL_INVALID_VALUE);
        }
        places.push((mem, off));
    }
    let ev = match crate::svm::wait_marker(command_queue, num_events_in_wait_list, event_wait_list)
    {
        Ok(ev) => ev,
        Err(e) => return Some(e),
    };
    let release = |ev| {
        // SAFETY: the marker's event, ours to release.
        unsafe { opencl::clReleaseEvent(ev) };
    };
    let mut mapped: Vec<(cl_mem, *mut c_void)> = Vec::with_capacity(n);
    let unmap_all = |mapped: &[(cl_mem, *mut c_void)]| {
        let mut rc = opencl::CL_SUCCESS;
        for &(mem, p) in mapped {
            // SAFETY: a pointer this library's map gave for `mem`.
            let r = unsafe {
                opencl::clEnqueueUnmapMemObject(
                    command_queue,
                    mem,
                    p,
                    0,
                    std::ptr::null(),
                    std::ptr::null_mut(),
                )
            };
            if rc == opencl::CL_SUCCESS {
                rc = r;
            }
        }
        rc
    };
    for &(mem, off) in &places {
        let mut err = 0;
        // The object's size, as the guest library learnt it once.
        let size = crate::checks::mem_facts(mem).map(|(size, _)| size as usize);
        let p = if let Some(size) = size {
            // SAFETY: a blocking map of the whole object; `err` is a live
            // local.
            unsafe {
                opencl::clEnqueueMapBuffer(
                    command_queue,
                    mem,
                    1,
                    opencl::CL_MAP_READ | opencl::CL_MAP_WRITE,
                    0,
                    size,
                    0,
                    std::ptr::null(),
                    std::ptr::null_mut(),
                    &mut err,
                )
            }
        } else {
            err = opencl::CL_INVALID_MEM_OBJECT;
            std::ptr::null_mut()
        };
        if p.is_null() {
            unmap_all(&mapped);
            release(ev);
            return Some(if err == opencl::CL_SUCCESS {
                opencl::CL_MEM_OBJECT_ALLOCATION_FAILURE
            } else {
                err
            });
        }
        // SAFETY: `off` + a pointer lies inside the copy (checked above).
        unsafe {
            copy.as_mut_ptr()
                .cast::<u8>()
                .add(off)
                .cast::<*mut c_void>()
                .write_unaligned(p)
        };
        mapped.push((mem, p));
    }
    // SAFETY: the application's function, with its arguments as the device
    // would give them.
    unsafe { func(copy.as_mut_ptr().cast()) };
    let rc = unmap_all(&mapped);
    if rc != opencl::CL_SUCCESS {
        release(ev);
        return Some(rc);
    }
    crate::svm::give_event(ev, event, opencl::CL_COMMAND_NATIVE_KERNEL);
    Some(opencl::CL_SUCCESS)
}
