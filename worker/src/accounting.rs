//! What the scheduler needs from the OpenCL backend: each kernel's device
//! time, measured from its completion event, and the device memory each
//! memory object holds, charged to its VM while the object lives.
//!
//! - A launch (`implement(launch)`) is made with an event (the worker's
//!   own when the guest asks for none); callbacks on it report when the
//!   kernel starts running and when it completes, with its device time
//!   from the event's profiling information when the queue has profiling
//!   enabled, else the time between the two callbacks.
//! - A memory object just created (`after(charge_memory)`) is charged its
//!   `CL_MEM_SIZE`; a charge beyond the VM's quota destroys it again and
//!   the call fails with `CL_MEM_OBJECT_ALLOCATION_FAILURE`, as when the
//!   device has no memory left. A destructor callback credits the size back
//!   when the driver destroys the object (whoever releases it last).
//!
//! - A kernel that never runs because an event it waits for failed (a user
//!   event set to an error, as the cleanup of a dead guest does) gets no
//!   callback from PoCL: the watches still pending are looked at now and
//!   then (at most every 100 ms, at launches) and after each guest's
//!   cleanup, and one whose event has failed is completed then, so that
//!   its VM's kernels in flight come back down.
//!
//! Without an admission object (a worker serving without a policy) calls
//! are made as they are.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use remoting::worker::{Admission, CallCtx, Caller, DispatchError};
use server::ledger::now_ns;
use server::policy::resource;

use crate::opencl::{self, Api, cl_command_queue, cl_event, cl_int, cl_kernel, cl_mem, cl_uint};

const CL_RUNNING: cl_int = 1;
const CL_COMPLETE: cl_int = 0;
const CL_PROFILING_COMMAND_START: u32 = 0x1282;
const CL_PROFILING_COMMAND_END: u32 = 0x1283;
const CL_MEM_SIZE: u32 = 0x1102;
const CL_MEM_ASSOCIATED_MEMOBJECT: u32 = 0x1107;
const CL_EVENT_COMMAND_EXECUTION_STATUS: u32 = 0x11D3;

/// Watches whose completion has not been reported, for [`settle`].
static PENDING: Mutex<Vec<Arc<Watch>>> = Mutex::new(Vec::new());
/// When [`settle`] last looked (monotonic ns).
static LAST_SETTLE: AtomicU64 = AtomicU64::new(0);
/// How often launches look at the pending watches, at most.
const SETTLE_EVERY: Duration = Duration::from_millis(100);

/// A kernel being watched: shared by its two event callbacks.
struct Watch {
    admission: Arc<dyn Admission>,
    caller: Caller,
    /// Whether the start was reported.
    started: AtomicBool,
    /// Monotonic ns at which the kernel started running (0: not seen).
    running_at: AtomicU64,
    profiling:
        Option<unsafe extern "C" fn(cl_event, u32, usize, *mut c_void, *mut usize) -> cl_int>,
    /// Releases the worker's reference to the event (its own event, or
    /// the guest's, retained while watched).
    release: Option<unsafe extern "C" fn(cl_event) -> cl_int>,
    /// The event, for [`settle`].
    event: AtomicU64,
    /// Whether the completion was reported (once, by the callback or by
    /// [`settle`]).
    done: AtomicBool,
}

impl Watch {
    /// Reports the kernel's completion (once) and releases the worker's
    /// reference to its event.
    fn finish(&self, device_time: Option<Duration>) {
        if self.done.swap(true, Ordering::AcqRel) {
            return;
        }
        self.admission
            .completed(&self.caller, resource::KERNEL, device_time);
        if let Some(release) = self.release {
            let event = self.event.load(Ordering::Acquire) as usize as cl_event;
            // SAFETY: the worker's own reference to the event, released once.
            unsafe { release(event) };
        }
    }

    fn start(&self) {
        if !self.started.swap(true, Ordering::AcqRel) {
            self.running_at.store(now_ns(), Ordering::Release);
            self.admission.started(&self.caller, resource::KERNEL);
        }
    }

    /// The kernel's device time: from profiling when the queue has it,
    /// else since it was seen running.
    fn device_time(&self, event: cl_event) -> Duration {
        if let Some(get) = self.profiling {
            let (mut start, mut end) = (0u64, 0u64);
            // SAFETY: `event` is the kernel's live event (its callback is
            // running); the outputs are locals of the sizes passed.
            let ok = unsafe {
                get(
                    event,
                    CL_PROFILING_COMMAND_START,
                    8,
                    (&mut start as *mut u64).cast(),
                    std::ptr::null_mut(),
                ) == 0
                    && get(
                        event,
                        CL_PROFILING_COMMAND_END,
                        8,
                        (&mut end as *mut u64).cast(),
                        std::ptr::null_mut(),
                    ) == 0
            };
            if ok && end >= start && start > 0 {
                return Duration::from_nanos(end - start);
            }
        }
        let at = self.running_at.load(Ordering::Acquire);
        Duration::from_nanos(now_ns().saturating_sub(at))
    }
}

extern "C" fn on_running(_event: cl_event, _status: cl_int, data: *mut c_void) {
    // SAFETY: `data` is a reference counted `Watch` whose count includes
    // this callback's (taken in `watch`); it is dropped here.
    let w = unsafe { Arc::from_raw(data.cast::<Watch>()) };
    w.start();
}

extern "C" fn on_complete(event: cl_event, _status: cl_int, data: *mut c_void) {
    // SAFETY: as in `on_running`: this callback's reference, dropped here.
    let w = unsafe { Arc::from_raw(data.cast::<Watch>()) };
    w.start();
    let t = w.device_time(event);
    w.finish(Some(t));
    PENDING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|p| !Arc::ptr_eq(p, &w));
}

/// Completes the pending watches whose event failed (PoCL calls no
/// callback for a command that never ran because an event it waited for
/// failed), and forgets the completed ones.
pub fn settle(api: &Api) {
    LAST_SETTLE.store(now_ns(), Ordering::Relaxed);
    let Some(info) = api.clGetEventInfo else {
        return;
    };
    let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    pending.retain(|w| {
        if w.done.load(Ordering::Acquire) {
            return false;
        }
        let event = w.event.load(Ordering::Acquire) as usize as cl_event;
        let mut status: cl_int = 0;
        // SAFETY: the worker holds a reference to the event until the watch
        // is done; the output is a local of the size passed.
        let rc = unsafe {
            info(
                event,
                CL_EVENT_COMMAND_EXECUTION_STATUS,
                size_of::<cl_int>(),
                (&mut status as *mut cl_int).cast(),
                std::ptr::null_mut(),
            )
        };
        if rc == 0 && status < 0 {
            tracing::debug!(status, "a watched kernel failed without running");
            let t = w
                .started
                .load(Ordering::Acquire)
                .then(|| w.device_time(event));
            w.finish(t);
            return false;
        }
        true
    });
}

/// Watches the kernel of `event` (just enqueued, admitted for the caller
/// of `cx`); `own` says the worker made the event and releases it.
fn watch(api: &Api, admission: Arc<dyn Admission>, caller: Caller, event: cl_event, own: bool) {
    if now_ns().saturating_sub(LAST_SETTLE.load(Ordering::Relaxed)) > SETTLE_EVERY.as_nanos() as u64
    {
        settle(api);
    }
    let (Some(set), Some(retain), Some(release)) = (
        api.clSetEventCallback,
        api.clRetainEvent,
        api.clReleaseEvent,
    ) else {
        admission.completed(&caller, resource::KERNEL, None);
        if let (true, Some(r)) = (own, api.clReleaseEvent) {
            // SAFETY: the worker's own reference, released once.
            unsafe { r(event) };
        }
        return;
    };
    if !own {
        // SAFETY: the guest's live event: the worker holds a reference of
        // its own while it watches it (the guest may release it first).
        unsafe { retain(event) };
    }
    let w = Arc::new(Watch {
        admission,
        caller,
        started: AtomicBool::new(false),
        running_at: AtomicU64::new(0),
        profiling: api.clGetEventProfilingInfo,
        release: Some(release),
        event: AtomicU64::new(event as usize as u64),
        done: AtomicBool::new(false),
    });
    PENDING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(w.clone());
    let running = Arc::into_raw(w.clone()) as *mut c_void;
    let complete = Arc::into_raw(w.clone()) as *mut c_void;
    // SAFETY: a live event; each callback gets its own reference to the
    // watch and drops it (a callback the driver refuses is dropped here).
    unsafe {
        if set(event, CL_RUNNING, Some(on_running), running) != 0 {
            drop(Arc::from_raw(running.cast::<Watch>()));
        }
        if set(event, CL_COMPLETE, Some(on_complete), complete) != 0 {
            drop(Arc::from_raw(complete.cast::<Watch>()));
            w.finish(None);
        }
    }
}

/// Runs an enqueue of a kernel, `enqueue(event)`, with an event to watch
/// (the guest's `event`, or the worker's own when it is NULL).
fn launched(
    api: &Api,
    cx: &CallCtx<'_>,
    event: *mut cl_event,
    enqueue: impl FnOnce(*mut cl_event) -> cl_int,
) -> cl_int {
    let Some(admission) = cx.session.admission.clone() else {
        return enqueue(event);
    };
    let caller = cx.session.caller.clone();
    let mut own: cl_event = std::ptr::null_mut();
    let target = if event.is_null() {
        &mut own as *mut cl_event
    } else {
        event
    };
    let rc = enqueue(target);
    if rc != 0 {
        admission.completed(&caller, resource::KERNEL, None);
        return rc;
    }
    // SAFETY: `target` is the guest's event slot in worker memory or the
    // local above; the driver stored the new event there.
    let ev = unsafe { target.read_unaligned() };
    if ev.is_null() {
        admission.completed(&caller, resource::KERNEL, None);
    } else {
        watch(api, admission, caller, ev, event.is_null());
    }
    rc
}

/// `clEnqueueNDRangeKernel`, watched for the scheduler.
///
/// # Safety
/// The arguments are those the dispatcher would pass to the function.
#[allow(clippy::too_many_arguments)]
pub unsafe fn launch(
    api: &Api,
    cx: &mut CallCtx<'_>,
    queue: cl_command_queue,
    kernel: cl_kernel,
    work_dim: cl_uint,
    offset: *const usize,
    global: *const usize,
    local: *const usize,
    n_wait: cl_uint,
    wait: *const cl_event,
    event: *mut cl_event,
) -> Result<cl_int, DispatchError> {
    let f = api
        .clEnqueueNDRangeKernel
        .ok_or(DispatchError::Unavailable("clEnqueueNDRangeKernel"))?;
    // SAFETY: the caller's arguments, and an event slot that is theirs or
    // a local.
    Ok(launched(api, cx, event, |ev| unsafe {
        f(
            queue, kernel, work_dim, offset, global, local, n_wait, wait, ev,
        )
    }))
}

/// `clEnqueueTask`, watched for the scheduler.
///
/// # Safety
/// The arguments are those the dispatcher would pass to the function.
pub unsafe fn launch_task(
    api: &Api,
    cx: &mut CallCtx<'_>,
    queue: cl_command_queue,
    kernel: cl_kernel,
    n_wait: cl_uint,
    wait: *const cl_event,
    event: *mut cl_event,
) -> Result<cl_int, DispatchError> {
    let f = api
        .clEnqueueTask
        .ok_or(DispatchError::Unavailable("clEnqueueTask"))?;
    // SAFETY: as in `launch`.
    Ok(launched(api, cx, event, |ev| unsafe {
        f(queue, kernel, n_wait, wait, ev)
    }))
}

/// What a memory object's destructor callback credits back.
struct Charge {
    admission: Arc<dyn Admission>,
    caller: Caller,
    bytes: u64,
}

extern "C" fn on_destroyed(_mem: cl_mem, data: *mut c_void) {
    // SAFETY: the `Charge` boxed for this object in `charge_memory`, given
    // to this callback alone; the driver calls it once.
    let c = unsafe { Box::from_raw(data.cast::<Charge>()) };
    c.admission
        .charge(&c.caller, resource::MEMORY, -(c.bytes as i64));
}

/// Charges the memory object `mem` just created to its VM: see the module
/// documentation.
///
/// # Safety
/// `mem` is a memory object the driver has just returned to this call.
pub unsafe fn charge_memory(
    api: &Api,
    cx: &mut CallCtx<'_>,
    mem: cl_mem,
) -> Result<cl_mem, DispatchError> {
    let Some(admission) = cx.session.admission.clone() else {
        return Ok(mem);
    };
    let (Some(info), Some(on_destroy), Some(release)) = (
        api.clGetMemObjectInfo,
        api.clSetMemObjectDestructorCallback,
        api.clReleaseMemObject,
    ) else {
        return Ok(mem);
    };
    let query = |param: u32| -> Option<u64> {
        let mut v = 0u64;
        // SAFETY: a live memory object the driver just returned; the output
        // is a local of the size passed (size_t and pointers are 8 bytes).
        (unsafe {
            info(
                mem,
                param,
                8,
                (&mut v as *mut u64).cast(),
                std::ptr::null_mut(),
            )
        } == 0)
            .then_some(v)
    };
    // A sub-buffer or an image over a buffer uses its parent's storage.
    if query(CL_MEM_ASSOCIATED_MEMOBJECT).is_some_and(|p| p != 0) {
        return Ok(mem);
    }
    let bytes = query(CL_MEM_SIZE).unwrap_or(0);
    let caller = cx.session.caller.clone();
    if !admission.charge(&caller, resource::MEMORY, bytes as i64) {
        tracing::debug!(vm = %caller.vm, bytes, "allocation refused: memory quota");
        // SAFETY: the object the call created; nobody else has seen it.
        unsafe { release(mem) };
        return Err(DispatchError::Api(
            opencl::CL_MEM_OBJECT_ALLOCATION_FAILURE.into(),
        ));
    }
    let data = Box::into_raw(Box::new(Charge {
        admission: admission.clone(),
        caller: caller.clone(),
        bytes,
    }));
    // SAFETY: a live memory object; the callback takes the box back.
    if unsafe { on_destroy(mem, Some(on_destroyed), data.cast()) } != 0 {
        // SAFETY: the callback was not registered: the box is still ours.
        drop(unsafe { Box::from_raw(data) });
        admission.charge(&caller, resource::MEMORY, -(bytes as i64));
    }
    Ok(mem)
}
