//! Errors at enqueue time. An asynchronous enqueue call returns
//! `CL_SUCCESS` as soon as it is sent; natively, a call with invalid
//! arguments returns its error at once. Before an asynchronous call is sent,
//! the guest library looks at its arguments with facts it holds or learns
//! once per object (a buffer's size and type, the context of a queue, a
//! buffer, a kernel or an event, a kernel's work-group limits on the
//! queue's device). A call that may be invalid is sent synchronously
//! ([`remoting::guest::synchronously`]): it returns the driver's own error,
//! with the driver's own precedence among several, or runs if the driver
//! accepts it. Valid calls stay asynchronous and pay only the look.
//!
//! Which calls count as suspect, per function:
//! - every one: a NULL queue, memory object or kernel; an object or an
//!   event of another context than the queue's (looked at only once the
//!   process has made a second context);
//! - buffer writes, copies and fills: a range outside a buffer (its size is
//!   learnt once), a size of 0, a copy within one buffer whose ranges
//!   overlap;
//! - rectangular transfers: a region with a 0, pitches smaller than a row
//!   or a slice, a rectangle that ends past a buffer, a copy within one
//!   buffer;
//! - image copies and fills: an object that is not an image;
//! - kernel launches: a local size that does not divide the global size or
//!   exceeds the kernel's work-group size or the device's work-item sizes,
//!   a required work-group size not met, a global range that overflows.
//!
//! Facts are keyed by the objects' wire ids, which are never reused.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::opencl::{self, cl_command_queue, cl_event, cl_int, cl_kernel, cl_mem, cl_uint};

/// Facts learnt per object (and, for kernels, per device): up to three
/// words each, keyed by the object's wire id and the parameter's name.
static FACTS: Mutex<Option<Facts>> = Mutex::new(None);

/// Facts by (wire id, parameter).
type Facts = HashMap<(u64, u64), [u64; 3]>;

/// Facts kept at most (a process that makes objects without end forgets
/// them all and learns again).
const MAX_FACTS: usize = 1 << 20;

/// Contexts this process has made; while it is at most one, objects of
/// different contexts cannot meet in a call.
static CONTEXTS_MADE: AtomicUsize = AtomicUsize::new(0);

/// Notes a context made by the application.
pub(crate) fn context_made() {
    CONTEXTS_MADE.fetch_add(1, Ordering::Relaxed);
}

/// The fact `param` of `handle`, learnt by `query` (which fills up to three
/// words and returns the driver's status) the first time; `None` when the
/// query fails.
fn fact(
    handle: usize,
    param: u64,
    query: impl FnOnce(&mut [u64; 3]) -> cl_int,
) -> Option<[u64; 3]> {
    let key = (remoting::guest::objects::id_of(handle), param);
    let lock = || FACTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(v) = lock().as_ref().and_then(|m| m.get(&key)) {
        return Some(*v);
    }
    let mut v = [0u64; 3];
    // Asked without holding the lock: the query is a call to the worker.
    if query(&mut v) != opencl::CL_SUCCESS {
        return None;
    }
    let mut m = lock();
    let m = m.get_or_insert_with(HashMap::new);
    if m.len() >= MAX_FACTS {
        m.clear();
    }
    m.insert(key, v);
    Some(v)
}

/// `size_of_val(v)` bytes of `v` as the out-parameter of an info query.
fn out(v: &mut [u64; 3], words: usize) -> (usize, *mut c_void) {
    (words * 8, v.as_mut_ptr().cast())
}

/// A memory object's size and type (`CL_MEM_SIZE`, `CL_MEM_TYPE`).
pub(crate) fn mem_facts(mem: cl_mem) -> Option<(u64, u32)> {
    let v = fact(mem as usize, u64::from(opencl::CL_MEM_SIZE), |v| {
        let (n, p) = out(v, 1);
        // SAFETY: `p` holds `n` writable bytes.
        let rc = unsafe {
            opencl::clGetMemObjectInfo(mem, opencl::CL_MEM_SIZE, n, p, std::ptr::null_mut())
        };
        if rc != opencl::CL_SUCCESS {
            return rc;
        }
        let mut t: cl_uint = 0;
        // SAFETY: `t` is a live cl_uint for the query's one output.
        let rc = unsafe {
            opencl::clGetMemObjectInfo(
                mem,
                opencl::CL_MEM_TYPE,
                size_of::<cl_uint>(),
                (&mut t as *mut cl_uint).cast(),
                std::ptr::null_mut(),
            )
        };
        v[1] = u64::from(t);
        rc
    })?;
    Some((v[0], v[1] as u32))
}

/// A buffer's size, `None` if unknown.
pub(crate) fn buffer_size(mem: cl_mem) -> Option<u64> {
    mem_facts(mem).map(|(size, _)| size)
}

/// Whether `mem` is known to be an image (not a buffer, not a pipe).
fn is_image(mem: cl_mem) -> bool {
    mem_facts(mem).is_some_and(|(_, t)| {
        (opencl::CL_MEM_OBJECT_IMAGE2D..=opencl::CL_MEM_OBJECT_IMAGE1D_BUFFER).contains(&t)
    })
}

/// What an object is, for its context query.
#[derive(Clone, Copy)]
pub(crate) enum Obj {
    Queue(cl_command_queue),
    Mem(cl_mem),
    Kernel(cl_kernel),
    Event(cl_event),
}

/// The context of `o` (the guest's handle), `None` if the query fails.
fn context_of(o: Obj) -> Option<u64> {
    let (handle, param) = match o {
        Obj::Queue(q) => (q as usize, opencl::CL_QUEUE_CONTEXT),
        Obj::Mem(m) => (m as usize, opencl::CL_MEM_CONTEXT),
        Obj::Kernel(k) => (k as usize, opencl::CL_KERNEL_CONTEXT),
        Obj::Event(e) => (e as usize, opencl::CL_EVENT_CONTEXT),
    };
    let v = fact(handle, u64::from(param), |v| {
        let (n, p) = out(v, 1);
        let none = std::ptr::null_mut();
        // SAFETY: `p` holds `n` writable bytes; each handle is the
        // application's, passed on as it gave it.
        unsafe {
            match o {
                Obj::Queue(q) => opencl::clGetCommandQueueInfo(q, param, n, p, none),
                Obj::Mem(m) => opencl::clGetMemObjectInfo(m, param, n, p, none),
                Obj::Kernel(k) => opencl::clGetKernelInfo(k, param, n, p, none),
                Obj::Event(e) => opencl::clGetEventInfo(e, param, n, p, none),
            }
        }
    })?;
    Some(v[0])
}

/// Whether a call on `queue` with `objs` and the wait list may fail for a
/// NULL object or for objects of different contexts.
///
/// # Safety
/// `wait` is NULL or holds `n` events (OpenCL's contract).
pub(crate) unsafe fn objects_suspect(
    queue: cl_command_queue,
    objs: &[Obj],
    n: cl_uint,
    wait: *const cl_event,
) -> bool {
    let null = |o: &Obj| match *o {
        Obj::Queue(q) => q.is_null(),
        Obj::Mem(m) => m.is_null(),
        Obj::Kernel(k) => k.is_null(),
        Obj::Event(e) => e.is_null(),
    };
    if queue.is_null() || objs.iter().any(null) {
        return true;
    }
    if CONTEXTS_MADE.load(Ordering::Relaxed) <= 1 {
        return false;
    }
    let Some(ctx) = context_of(Obj::Queue(queue)) else {
        return true;
    };
    let events: &[cl_event] = if wait.is_null() {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(wait, n as usize) }
    };
    objs.iter()
        .copied()
        .chain(events.iter().map(|&e| Obj::Event(e)))
        .any(|o| null(&o) || context_of(o) != Some(ctx))
}

/// Whether `[offset, offset + size)` may lie outside `mem` (or the size is
/// 0, or the size of `mem` is unknown).
pub(crate) fn range_suspect(mem: cl_mem, offset: usize, size: usize) -> bool {
    size == 0
        || match (buffer_size(mem), offset.checked_add(size)) {
            (Some(total), Some(end)) => end as u64 > total,
            _ => true,
        }
}

/// Whether two ranges of `size` bytes at `a` and `b` overlap.
pub(crate) fn overlap(a: usize, b: usize, size: usize) -> bool {
    a < b.saturating_add(size) && b < a.saturating_add(size)
}

/// Whether a rectangle of `region` at `origin`, with these pitches (0: the
/// default), may be invalid or end past `total` bytes (`None`: no bound to
/// check, as for host memory).
///
/// # Safety
/// `origin` and `region` are NULL or hold three values.
pub(crate) unsafe fn rect_suspect(
    origin: *const usize,
    region: *const usize,
    row_pitch: usize,
    slice_pitch: usize,
    total: Option<u64>,
) -> bool {
    if origin.is_null() || region.is_null() {
        return true;
    }
    // SAFETY: the caller's contract.
    let (o, r) = unsafe { (*origin.cast::<[usize; 3]>(), *region.cast::<[usize; 3]>()) };
    if r.contains(&0) {
        return true;
    }
    let row = if row_pitch == 0 { r[0] } else { row_pitch };
    let Some(min_slice) = r[1].checked_mul(row) else {
        return true;
    };
    let slice = if slice_pitch == 0 {
        min_slice
    } else {
        slice_pitch
    };
    if row < r[0] || slice < min_slice || !slice.is_multiple_of(row) {
        return true;
    }
    let Some(total) = total else { return false };
    // The byte after the rectangle's last one.
    let end = (|| {
        let z = o[2].checked_add(r[2] - 1)?.checked_mul(slice)?;
        let y = o[1].checked_add(r[1] - 1)?.checked_mul(row)?;
        z.checked_add(y)?.checked_add(o[0])?.checked_add(r[0])
    })();
    end.is_none_or(|e| e as u64 > total)
}

/// Whether a launch of `kernel` on `queue` with these sizes may be refused
/// by the driver for its work sizes.
///
/// # Safety
/// The size pointers are NULL or hold `work_dim` values (`work_dim` is 1 to
/// 3, checked before).
pub(crate) unsafe fn launch_suspect(
    queue: cl_command_queue,
    kernel: cl_kernel,
    work_dim: cl_uint,
    offset: *const usize,
    global: *const usize,
    local: *const usize,
) -> bool {
    let dims = (work_dim as usize).min(3);
    if global.is_null() {
        return true;
    }
    // SAFETY: the caller's contract.
    let g = unsafe { std::slice::from_raw_parts(global, dims) };
    if !offset.is_null() {
        // SAFETY: the caller's contract.
        let o = unsafe { std::slice::from_raw_parts(offset, dims) };
        if o.iter().zip(g).any(|(o, g)| o.checked_add(*g).is_none()) {
            return true;
        }
    }
    let Some(device) = fact(queue as usize, u64::from(opencl::CL_QUEUE_DEVICE), |v| {
        let (n, p) = out(v, 1);
        // SAFETY: `p` holds `n` writable bytes.
        unsafe {
            opencl::clGetCommandQueueInfo(
                queue,
                opencl::CL_QUEUE_DEVICE,
                n,
                p,
                std::ptr::null_mut(),
            )
        }
    }) else {
        return true;
    };
    let device = device[0] as usize as opencl::cl_device_id;
    // The kernel's limits on that device: its work-group size and the size
    // it requires (0s: none), keyed by kernel and device.
    let per_device = u64::from(opencl::CL_KERNEL_WORK_GROUP_SIZE) << 32
        ^ remoting::guest::objects::id_of(device as usize);
    let Some(limits) = fact(kernel as usize, per_device, |v| {
        let mut wg: usize = 0;
        // SAFETY: `wg` is a live usize for the query's one output.
        let rc = unsafe {
            opencl::clGetKernelWorkGroupInfo(
                kernel,
                device,
                opencl::CL_KERNEL_WORK_GROUP_SIZE,
                size_of::<usize>(),
                (&mut wg as *mut usize).cast(),
                std::ptr::null_mut(),
            )
        };
        let mut reqd = [0usize; 3];
        // SAFETY: `reqd` holds three usizes.
        let rc2 = unsafe {
            opencl::clGetKernelWorkGroupInfo(
                kernel,
                device,
                opencl::CL_KERNEL_COMPILE_WORK_GROUP_SIZE,
                size_of_val(&reqd),
                reqd.as_mut_ptr().cast(),
                std::ptr::null_mut(),
            )
        };
        // Packed: the work-group size, then the required size's three
        // values in 21 bits each (larger ones are taken as none).
        let fits = reqd.iter().all(|&r| r < 1 << 21);
        v[0] = wg as u64;
        v[1] = if fits {
            reqd.iter()
                .enumerate()
                .fold(0, |a, (i, &r)| a | (r as u64) << (21 * i))
        } else {
            0
        };
        if rc != opencl::CL_SUCCESS { rc } else { rc2 }
    }) else {
        return true;
    };
    let reqd: Vec<usize> = (0..3)
        .map(|i| ((limits[1] >> (21 * i)) & ((1 << 21) - 1)) as usize)
        .collect();
    let requires = reqd.iter().any(|&r| r != 0);
    if local.is_null() {
        return requires;
    }
    let Some(items) = fact(
        device as usize,
        u64::from(opencl::CL_DEVICE_MAX_WORK_ITEM_SIZES),
        |v| {
            let (n, p) = out(v, 3);
            // SAFETY: `p` holds `n` writable bytes (three sizes).
            unsafe {
                opencl::clGetDeviceInfo(
                    device,
                    opencl::CL_DEVICE_MAX_WORK_ITEM_SIZES,
                    n,
                    p,
                    std::ptr::null_mut(),
                )
            }
        },
    ) else {
        return true;
    };
    // SAFETY: the caller's contract.
    let l = unsafe { std::slice::from_raw_parts(local, dims) };
    let product = l.iter().try_fold(1usize, |a, &x| a.checked_mul(x));
    product.is_none_or(|p| p == 0 || p as u64 > limits[0])
        || l.iter().zip(&items).any(|(&x, &m)| x as u64 > m)
        || l.iter()
            .zip(g)
            .any(|(&x, &g)| x == 0 || !g.is_multiple_of(x))
        || (requires && l.iter().zip(&reqd).any(|(x, r)| x != r))
}

/// Makes `call` synchronously when `suspect` holds (the driver's answer
/// returned), and with the fast paths passed over; `None` otherwise (the
/// ordinary, asynchronous call).
pub(crate) fn synchronously_if(suspect: bool, call: impl FnOnce() -> cl_int) -> Option<cl_int> {
    suspect.then(|| {
        tracing::debug!("an enqueue call that may be invalid is made synchronously");
        crate::recorded::passing_through(|| remoting::guest::synchronously(call))
    })
}

/// Whether the running call is a fast path's own (no checks then).
pub(crate) fn passing() -> bool {
    crate::recorded::passing()
}

/// The error a native driver returns for a call on an image that is a
/// buffer: `CL_INVALID_MEM_OBJECT`; `None` when `mem` is an image or
/// unknown.
pub(crate) fn not_an_image(mem: cl_mem) -> Option<cl_int> {
    (!mem.is_null() && mem_facts(mem).is_some() && !is_image(mem))
        .then_some(opencl::CL_INVALID_MEM_OBJECT)
}

/// Whether any of `mems` is not known to be an image.
pub(crate) fn images_suspect(mems: &[cl_mem]) -> bool {
    mems.iter().any(|&m| !is_image(m))
}

// ---- fast paths of the asynchronous enqueue calls ----

type Events = *const cl_event;
type Size3 = *const usize;

/// `clEnqueueWriteBufferRect`: suspect objects or rectangles.
///
/// # Safety
/// OpenCL's contract for `clEnqueueWriteBufferRect`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn write_buffer_rect(
    q: cl_command_queue,
    buffer: cl_mem,
    blocking: opencl::cl_bool,
    buffer_origin: Size3,
    host_origin: Size3,
    region: Size3,
    buffer_row_pitch: usize,
    buffer_slice_pitch: usize,
    host_row_pitch: usize,
    host_slice_pitch: usize,
    ptr: *const c_void,
    n: cl_uint,
    wait: Events,
    event: *mut cl_event,
) -> Option<cl_int> {
    if passing() {
        return None;
    }
    // SAFETY: OpenCL's contract (three values each, `n` events).
    let suspect = unsafe {
        ptr.is_null()
            || objects_suspect(q, &[Obj::Mem(buffer)], n, wait)
            || rect_suspect(
                buffer_origin,
                region,
                buffer_row_pitch,
                buffer_slice_pitch,
                Some(buffer_size(buffer).unwrap_or(0)),
            )
            || rect_suspect(host_origin, region, host_row_pitch, host_slice_pitch, None)
    };
    // SAFETY: the application's arguments, passed on.
    synchronously_if(suspect, || unsafe {
        opencl::clEnqueueWriteBufferRect(
            q,
            buffer,
            blocking,
            buffer_origin,
            host_origin,
            region,
            buffer_row_pitch,
            buffer_slice_pitch,
            host_row_pitch,
            host_slice_pitch,
            ptr,
            n,
            wait,
            event,
        )
    })
}

/// `clEnqueueCopyBuffer`: suspect objects, ranges or overlap.
///
/// # Safety
/// OpenCL's contract for `clEnqueueCopyBuffer`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn copy_buffer(
    q: cl_command_queue,
    src: cl_mem,
    dst: cl_mem,
    src_offset: usize,
    dst_offset: usize,
    size: usize,
    n: cl_uint,
    wait: Events,
    event: *mut cl_event,
) -> Option<cl_int> {
    if passing() {
        return None;
    }
    // SAFETY: OpenCL's contract (`n` events).
    let suspect = unsafe { objects_suspect(q, &[Obj::Mem(src), Obj::Mem(dst)], n, wait) }
        || range_suspect(src, src_offset, size)
        || range_suspect(dst, dst_offset, size)
        || (src == dst && overlap(src_offset, dst_offset, size));
    // SAFETY: the application's arguments, passed on.
    synchronously_if(suspect, || unsafe {
        opencl::clEnqueueCopyBuffer(q, src, dst, src_offset, dst_offset, size, n, wait, event)
    })
}

/// `clEnqueueCopyBufferRect`: suspect objects or rectangles, or a copy
/// within one buffer.
///
/// # Safety
/// OpenCL's contract for `clEnqueueCopyBufferRect`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn copy_buffer_rect(
    q: cl_command_queue,
    src: cl_mem,
    dst: cl_mem,
    src_origin: Size3,
    dst_origin: Size3,
    region: Size3,
    src_row_pitch: usize,
    src_slice_pitch: usize,
    dst_row_pitch: usize,
    dst_slice_pitch: usize,
    n: cl_uint,
    wait: Events,
    event: *mut cl_event,
) -> Option<cl_int> {
    if passing() {
        return None;
    }
    // SAFETY: OpenCL's contract (three values each, `n` events).
    let suspect = src == dst
        || unsafe {
            objects_suspect(q, &[Obj::Mem(src), Obj::Mem(dst)], n, wait)
                || rect_suspect(
                    src_origin,
                    region,
                    src_row_pitch,
                    src_slice_pitch,
                    Some(buffer_size(src).unwrap_or(0)),
                )
                || rect_suspect(
                    dst_origin,
                    region,
                    dst_row_pitch,
                    dst_slice_pitch,
                    Some(buffer_size(dst).unwrap_or(0)),
                )
        };
    // SAFETY: the application's arguments, passed on.
    synchronously_if(suspect, || unsafe {
        opencl::clEnqueueCopyBufferRect(
            q,
            src,
            dst,
            src_origin,
            dst_origin,
            region,
            src_row_pitch,
            src_slice_pitch,
            dst_row_pitch,
            dst_slice_pitch,
            n,
            wait,
            event,
        )
    })
}

/// `clEnqueueCopyImage`: suspect objects, or not images.
///
/// # Safety
/// OpenCL's contract for `clEnqueueCopyImage`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn copy_image(
    q: cl_command_queue,
    src: cl_mem,
    dst: cl_mem,
    src_origin: Size3,
    dst_origin: Size3,
    region: Size3,
    n: cl_uint,
    wait: Events,
    event: *mut cl_event,
) -> Option<cl_int> {
    if passing() {
        return None;
    }
    // SAFETY: OpenCL's contract (`n` events).
    let suspect = src == dst
        || src_origin.is_null()
        || dst_origin.is_null()
        || region.is_null()
        || unsafe { objects_suspect(q, &[Obj::Mem(src), Obj::Mem(dst)], n, wait) }
        || images_suspect(&[src, dst]);
    // SAFETY: the application's arguments, passed on.
    synchronously_if(suspect, || unsafe {
        opencl::clEnqueueCopyImage(q, src, dst, src_origin, dst_origin, region, n, wait, event)
    })
}

/// `clEnqueueCopyImageToBuffer`: suspect objects, or not an image.
///
/// # Safety
/// OpenCL's contract for `clEnqueueCopyImageToBuffer`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn copy_image_to_buffer(
    q: cl_command_queue,
    src: cl_mem,
    dst: cl_mem,
    src_origin: Size3,
    region: Size3,
    dst_offset: usize,
    n: cl_uint,
    wait: Events,
    event: *mut cl_event,
) -> Option<cl_int> {
    if passing() {
        return None;
    }
    // SAFETY: OpenCL's contract (`n` events).
    let suspect = src_origin.is_null()
        || region.is_null()
        || unsafe { objects_suspect(q, &[Obj::Mem(src), Obj::Mem(dst)], n, wait) }
        || images_suspect(&[src])
        || dst_offset as u64 >= buffer_size(dst).unwrap_or(0);
    // SAFETY: the application's arguments, passed on.
    synchronously_if(suspect, || unsafe {
        opencl::clEnqueueCopyImageToBuffer(
            q, src, dst, src_origin, region, dst_offset, n, wait, event,
        )
    })
}

/// `clEnqueueCopyBufferToImage`: suspect objects, or not an image.
///
/// # Safety
/// OpenCL's contract for `clEnqueueCopyBufferToImage`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn copy_buffer_to_image(
    q: cl_command_queue,
    src: cl_mem,
    dst: cl_mem,
    src_offset: usize,
    dst_origin: Size3,
    region: Size3,
    n: cl_uint,
    wait: Events,
    event: *mut cl_event,
) -> Option<cl_int> {
    if passing() {
        return None;
    }
    // SAFETY: OpenCL's contract (`n` events).
    let suspect = dst_origin.is_null()
        || region.is_null()
        || unsafe { objects_suspect(q, &[Obj::Mem(src), Obj::Mem(dst)], n, wait) }
        || images_suspect(&[dst])
        || src_offset as u64 >= buffer_size(src).unwrap_or(0);
    // SAFETY: the application's arguments, passed on.
    synchronously_if(suspect, || unsafe {
        opencl::clEnqueueCopyBufferToImage(
            q, src, dst, src_offset, dst_origin, region, n, wait, event,
        )
    })
}

/// A call whose only objects are its queue and wait list, made
/// synchronously when those are suspect.
///
/// # Safety
/// `wait` is NULL or holds `n` events (OpenCL's contract).
unsafe fn wait_list_call(
    q: cl_command_queue,
    n: cl_uint,
    wait: Events,
    call: impl FnOnce() -> cl_int,
) -> Option<cl_int> {
    if passing() {
        return None;
    }
    // SAFETY: the caller's contract.
    synchronously_if(unsafe { objects_suspect(q, &[], n, wait) }, call)
}

/// `clEnqueueMarkerWithWaitList`: suspect events.
///
/// # Safety
/// OpenCL's contract for `clEnqueueMarkerWithWaitList`.
pub unsafe fn marker_with_wait_list(
    q: cl_command_queue,
    n: cl_uint,
    wait: Events,
    event: *mut cl_event,
) -> Option<cl_int> {
    // SAFETY: the application's arguments, checked and passed on.
    unsafe {
        wait_list_call(q, n, wait, || {
            opencl::clEnqueueMarkerWithWaitList(q, n, wait, event)
        })
    }
}

/// `clEnqueueBarrierWithWaitList`: suspect events.
///
/// # Safety
/// OpenCL's contract for `clEnqueueBarrierWithWaitList`.
pub unsafe fn barrier_with_wait_list(
    q: cl_command_queue,
    n: cl_uint,
    wait: Events,
    event: *mut cl_event,
) -> Option<cl_int> {
    // SAFETY: the application's arguments, checked and passed on.
    unsafe {
        wait_list_call(q, n, wait, || {
            opencl::clEnqueueBarrierWithWaitList(q, n, wait, event)
        })
    }
}

/// `clEnqueueTask`: arguments not set, suspect objects, or a kernel that
/// requires a work-group size other than 1.
///
/// # Safety
/// OpenCL's contract for `clEnqueueTask`.
pub unsafe fn task(
    q: cl_command_queue,
    kernel: cl_kernel,
    n: cl_uint,
    wait: Events,
    event: *mut cl_event,
) -> Option<cl_int> {
    if passing() {
        return None;
    }
    if crate::recorded::args_missing(kernel) {
        return Some(opencl::CL_INVALID_KERNEL_ARGS);
    }
    let one = 1usize;
    // SAFETY: OpenCL's contract (`n` events); one-value sizes.
    let suspect = unsafe {
        objects_suspect(q, &[Obj::Kernel(kernel)], n, wait)
            || launch_suspect(q, kernel, 1, std::ptr::null(), &one, &one)
    };
    // SAFETY: the application's arguments, passed on.
    synchronously_if(suspect, || unsafe {
        opencl::clEnqueueTask(q, kernel, n, wait, event)
    })
}
