//! What the application gave, recorded by the guest library, where the
//! worker's objects differ from what a native driver would report:
//!
//! - buffers: the worker's buffer may differ (a `CL_MEM_USE_HOST_PTR`
//!   buffer is a copy there, the guest's memory not being the worker's; a
//!   buffer placed in the region's heap is `CL_MEM_USE_HOST_PTR` over heap
//!   memory there), so the flags and host pointer given to `clCreateBuffer`
//!   are recorded: `clGetMemObjectInfo` answers `CL_MEM_HOST_PTR` and
//!   `CL_MEM_FLAGS` as natively, and mapping a `CL_MEM_USE_HOST_PTR` buffer
//!   returns `host_ptr + offset` with the buffer's bytes copied there first
//!   (and written back at unmap), where the OpenCL specification says the
//!   contents are after a map;
//! - contexts: the properties given, for `CL_CONTEXT_PROPERTIES` (the
//!   worker's answer would hold its own platform pointer);
//! - kernels: which arguments are set, so that a launch with an argument
//!   not set fails at once with `CL_INVALID_KERNEL_ARGS`, as natively (the
//!   launch is asynchronous when remoted, and the driver's error would only
//!   be logged).
//!
//! A fast path that records makes the call it stands for itself
//! ([`passing_through`]).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::opencl::{self, cl_int, cl_mem};

/// What the application gave when it created a buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostBuffer {
    /// The application's `host_ptr` if it passed `CL_MEM_USE_HOST_PTR`
    /// (what `CL_MEM_HOST_PTR` returns), else 0 (NULL).
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

/// What the application gave when it created `mem`, if it did so with
/// `clCreateBuffer`.
fn record_of(mem: cl_mem) -> Option<HostBuffer> {
    HOST_BUFFERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()?
        .get(&(mem as usize))
        .copied()
}

/// The record of `mem`, if the application created it over its memory
/// (`CL_MEM_USE_HOST_PTR`).
pub(crate) fn host_buffer(mem: cl_mem) -> Option<HostBuffer> {
    record_of(mem).filter(|r| r.host_ptr != 0)
}

/// `CL_INVALID_OPERATION` when the flags `mem` was created with forbid
/// the host to read it (`read`) or write it (`write`): `CL_MEM_HOST_NO_ACCESS`,
/// `CL_MEM_HOST_WRITE_ONLY` for a read, `CL_MEM_HOST_READ_ONLY` for a write.
/// An asynchronous write returns before the driver sees it, so the guest
/// library answers as the driver would.
pub(crate) fn host_access_error(mem: cl_mem, read: bool, write: bool) -> Option<cl_int> {
    let flags = record_of(mem)?.flags;
    let forbidden = flags & opencl::CL_MEM_HOST_NO_ACCESS != 0
        || (read && flags & opencl::CL_MEM_HOST_WRITE_ONLY != 0)
        || (write && flags & opencl::CL_MEM_HOST_READ_ONLY != 0);
    forbidden.then_some(opencl::CL_INVALID_OPERATION)
}

/// Records what the application gave for buffer `mem`.
pub(crate) fn record(mem: cl_mem, flags: opencl::cl_mem_flags, host_ptr: *mut std::ffi::c_void) {
    if mem.is_null() {
        return;
    }
    let use_host = flags & opencl::CL_MEM_USE_HOST_PTR != 0;
    HOST_BUFFERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(
            mem as usize,
            HostBuffer {
                host_ptr: if use_host { host_ptr as usize } else { 0 },
                flags,
            },
        );
}

/// `clCreateBuffer`: made (in pieces when its data does not fit, or by the
/// ordinary call), then recorded.
///
/// # Safety
/// OpenCL's contract: `host_ptr` is NULL or points to `size` bytes (that
/// stay valid while the buffer lives, with `CL_MEM_USE_HOST_PTR`);
/// `errcode_ret` is NULL or writable.
pub(crate) unsafe fn create_and_record(
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
    record(mem, flags, host_ptr);
    mem
}

/// `clCreateBufferWithProperties` without properties: made as
/// `clCreateBuffer` (which OpenCL defines it to be then), so that the
/// buffer may live in the heap and keeps `CL_MEM_USE_HOST_PTR`'s meaning.
/// `None` (the ordinary call) when properties are given.
///
/// # Safety
/// OpenCL's contract for `clCreateBufferWithProperties`.
pub unsafe fn create_buffer_with_properties(
    context: opencl::cl_context,
    properties: *const opencl::cl_mem_properties,
    flags: opencl::cl_mem_flags,
    size: usize,
    host_ptr: *mut std::ffi::c_void,
    errcode_ret: *mut cl_int,
) -> Option<cl_mem> {
    if passing() || !properties.is_null() {
        return None;
    }
    // SAFETY: the caller's arguments, passed on.
    Some(unsafe { create_and_record(context, flags, size, host_ptr, errcode_ret) })
}

/// `clCreateSubBuffer` of a buffer the application created with
/// `clCreateBuffer`: made, then recorded with what native answers for it —
/// its parent's host pointer plus its origin (with `CL_MEM_USE_HOST_PTR`),
/// and its flags with what it inherits from its parent (the access and
/// host-access qualifiers it does not give, and how the parent's host
/// memory was given). `None`: the parent is not recorded; the ordinary
/// call is made.
///
/// # Safety
/// OpenCL's contract: `buffer_create_info` is NULL or points to a
/// `cl_buffer_region` (the only type); `errcode_ret` is NULL or writable.
pub unsafe fn create_sub_buffer(
    buffer: cl_mem,
    flags: opencl::cl_mem_flags,
    buffer_create_type: opencl::cl_buffer_create_type,
    buffer_create_info: *const std::ffi::c_void,
    errcode_ret: *mut cl_int,
) -> Option<cl_mem> {
    if passing() {
        return None;
    }
    let parent = record_of(buffer)?;
    // SAFETY: the caller's arguments, passed on.
    let mem = passing_through(|| unsafe {
        opencl::clCreateSubBuffer(
            buffer,
            flags,
            buffer_create_type,
            buffer_create_info,
            errcode_ret,
        )
    });
    if mem.is_null()
        || buffer_create_type != opencl::CL_BUFFER_CREATE_TYPE_REGION
        || buffer_create_info.is_null()
    {
        return Some(mem);
    }
    // SAFETY: the caller's contract: a cl_buffer_region (the call succeeded
    // with it).
    let origin = unsafe {
        buffer_create_info
            .cast::<opencl::cl_buffer_region>()
            .read_unaligned()
            .origin
    };
    let access = opencl::CL_MEM_READ_WRITE | opencl::CL_MEM_WRITE_ONLY | opencl::CL_MEM_READ_ONLY;
    let host = opencl::CL_MEM_HOST_WRITE_ONLY
        | opencl::CL_MEM_HOST_READ_ONLY
        | opencl::CL_MEM_HOST_NO_ACCESS;
    let mut f = flags;
    if f & access == 0 {
        f |= parent.flags & access;
    }
    if f & host == 0 {
        f |= parent.flags & host;
    }
    f |= parent.flags
        & (opencl::CL_MEM_USE_HOST_PTR
            | opencl::CL_MEM_ALLOC_HOST_PTR
            | opencl::CL_MEM_COPY_HOST_PTR);
    HOST_BUFFERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(
            mem as usize,
            HostBuffer {
                host_ptr: if parent.host_ptr != 0 {
                    parent.host_ptr + origin
                } else {
                    0
                },
                flags: f,
            },
        );
    Some(mem)
}

/// `clGetMemObjectInfo` of `CL_MEM_HOST_PTR` and `CL_MEM_FLAGS` for a
/// buffer the application created with `clCreateBuffer`; `None` for
/// anything else.
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
        opencl::CL_MEM_HOST_PTR => record_of(memobj)?.host_ptr as u64,
        opencl::CL_MEM_FLAGS => record_of(memobj)?.flags,
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

/// The properties each context was created with (`None`: NULL), as the
/// application passed them: `CL_CONTEXT_PROPERTIES` returns them, with the
/// application's own platform id (the worker's answer would hold the
/// worker's platform pointer).
static CONTEXT_PROPERTIES: Mutex<Option<HashMap<usize, Option<Vec<isize>>>>> = Mutex::new(None);

/// A zero-terminated (key, value) property list, copied (at most 64 pairs).
///
/// # Safety
/// `p` is NULL or a list ending with a zero key.
unsafe fn copy_properties(p: *const opencl::cl_context_properties) -> Option<Vec<isize>> {
    if p.is_null() {
        return None;
    }
    let mut v = Vec::new();
    for i in (0..129).step_by(2) {
        // SAFETY: keys sit at even positions up to the zero key.
        let key = unsafe { *p.add(i) };
        v.push(key);
        if key == 0 {
            break;
        }
        // SAFETY: a non-zero key is followed by its value.
        v.push(unsafe { *p.add(i + 1) });
    }
    Some(v)
}

fn record_context(ctx: opencl::cl_context, props: Option<Vec<isize>>) {
    if !ctx.is_null() {
        crate::checks::context_made();
        CONTEXT_PROPERTIES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(ctx as usize, props);
    }
}

/// `clCreateContext`, made, then its properties recorded.
///
/// # Safety
/// OpenCL's contract for `clCreateContext`.
pub unsafe fn create_context(
    properties: *const opencl::cl_context_properties,
    num_devices: opencl::cl_uint,
    devices: *const opencl::cl_device_id,
    pfn_notify: opencl::pfn_context_notify,
    user_data: *mut std::ffi::c_void,
    errcode_ret: *mut cl_int,
) -> Option<opencl::cl_context> {
    if passing() {
        return None;
    }
    // SAFETY: the caller's arguments, passed on.
    let ctx = passing_through(|| unsafe {
        opencl::clCreateContext(
            properties,
            num_devices,
            devices,
            pfn_notify,
            user_data,
            errcode_ret,
        )
    });
    // SAFETY: the caller's contract (the worker checked the list too).
    record_context(ctx, unsafe { copy_properties(properties) });
    Some(ctx)
}

/// `clCreateContextFromType`, made, then its properties recorded.
///
/// # Safety
/// OpenCL's contract for `clCreateContextFromType`.
pub unsafe fn create_context_from_type(
    properties: *const opencl::cl_context_properties,
    device_type: opencl::cl_device_type,
    pfn_notify: opencl::pfn_context_notify,
    user_data: *mut std::ffi::c_void,
    errcode_ret: *mut cl_int,
) -> Option<opencl::cl_context> {
    if passing() {
        return None;
    }
    // SAFETY: the caller's arguments, passed on.
    let ctx = passing_through(|| unsafe {
        opencl::clCreateContextFromType(properties, device_type, pfn_notify, user_data, errcode_ret)
    });
    // SAFETY: as in `create_context`.
    record_context(ctx, unsafe { copy_properties(properties) });
    Some(ctx)
}

/// `clGetContextInfo(CL_CONTEXT_PROPERTIES)` of a context this library
/// created: the properties as the application passed them (none: size 0).
///
/// # Safety
/// OpenCL's contract: `param_value` is NULL or holds `param_value_size`
/// writable bytes; `param_value_size_ret` is NULL or writable.
pub unsafe fn context_info(
    context: opencl::cl_context,
    param_name: opencl::cl_context_info,
    param_value_size: usize,
    param_value: *mut std::ffi::c_void,
    param_value_size_ret: *mut usize,
) -> Option<cl_int> {
    if param_name != opencl::CL_CONTEXT_PROPERTIES {
        return None;
    }
    let props = CONTEXT_PROPERTIES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()?
        .get(&(context as usize))?
        .clone();
    let bytes: Vec<u8> = props
        .unwrap_or_default()
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect();
    if !param_value.is_null() {
        if param_value_size < bytes.len() {
            return Some(opencl::CL_INVALID_VALUE);
        }
        // SAFETY: the caller's contract; checked to hold the bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), param_value.cast(), bytes.len()) };
    }
    if !param_value_size_ret.is_null() {
        // SAFETY: the caller's contract.
        unsafe { *param_value_size_ret = bytes.len() };
    }
    Some(opencl::CL_SUCCESS)
}

/// The arguments of a kernel made with `clCreateKernel` or `clCloneKernel`.
#[derive(Debug, Clone, Default)]
struct KernelArgs {
    /// How many it has (`CL_KERNEL_NUM_ARGS`, asked at the first launch).
    count: Option<u32>,
    /// Those set (successfully).
    set: std::collections::BTreeSet<u32>,
}

static KERNELS: Mutex<Option<HashMap<usize, KernelArgs>>> = Mutex::new(None);

fn kernels() -> std::sync::MutexGuard<'static, Option<HashMap<usize, KernelArgs>>> {
    KERNELS.lock().unwrap_or_else(|p| p.into_inner())
}

/// `clCreateKernel`, made, then recorded with no argument set.
///
/// # Safety
/// OpenCL's contract for `clCreateKernel`.
pub unsafe fn create_kernel(
    program: opencl::cl_program,
    kernel_name: *const std::ffi::c_char,
    errcode_ret: *mut cl_int,
) -> Option<opencl::cl_kernel> {
    if passing() {
        return None;
    }
    // SAFETY: the caller's arguments, passed on.
    let k =
        passing_through(|| unsafe { opencl::clCreateKernel(program, kernel_name, errcode_ret) });
    if !k.is_null() {
        kernels()
            .get_or_insert_with(HashMap::new)
            .insert(k as usize, KernelArgs::default());
    }
    Some(k)
}

/// `clCloneKernel`, made, then recorded with the arguments of its source
/// (which the clone keeps).
///
/// # Safety
/// OpenCL's contract for `clCloneKernel`.
pub unsafe fn clone_kernel(
    source_kernel: opencl::cl_kernel,
    errcode_ret: *mut cl_int,
) -> Option<opencl::cl_kernel> {
    if passing() {
        return None;
    }
    // SAFETY: the caller's arguments, passed on.
    let k = passing_through(|| unsafe { opencl::clCloneKernel(source_kernel, errcode_ret) });
    if !k.is_null() {
        let mut all = kernels();
        let map = all.get_or_insert_with(HashMap::new);
        if let Some(src) = map.get(&(source_kernel as usize)).cloned() {
            map.insert(k as usize, src);
        }
    }
    Some(k)
}

/// `clSetKernelArg`, made, then the argument recorded as set if it was.
///
/// # Safety
/// OpenCL's contract for `clSetKernelArg`.
pub unsafe fn set_kernel_arg(
    kernel: opencl::cl_kernel,
    arg_index: opencl::cl_uint,
    arg_size: usize,
    arg_value: *const std::ffi::c_void,
) -> Option<cl_int> {
    if passing() {
        return None;
    }
    // SAFETY: the caller's arguments, passed on.
    let rc = passing_through(|| unsafe {
        opencl::clSetKernelArg(kernel, arg_index, arg_size, arg_value)
    });
    Some(mark_set(kernel, arg_index, rc))
}

/// Records argument `arg_index` of `kernel` as set when the call that set
/// it succeeded (`rc`); gives back `rc`.
fn mark_set(kernel: opencl::cl_kernel, arg_index: opencl::cl_uint, rc: cl_int) -> cl_int {
    if rc == opencl::CL_SUCCESS
        && let Some(k) = kernels()
            .as_mut()
            .and_then(|m| m.get_mut(&(kernel as usize)))
    {
        k.set.insert(arg_index);
    }
    rc
}

/// `clSetKernelArgSVMPointer`, made, then the argument recorded as set if
/// it was.
///
/// # Safety
/// OpenCL's contract for `clSetKernelArgSVMPointer`.
pub unsafe fn set_kernel_arg_svm_pointer(
    kernel: opencl::cl_kernel,
    arg_index: opencl::cl_uint,
    arg_value: *const std::ffi::c_void,
) -> Option<cl_int> {
    if passing() {
        return None;
    }
    // SAFETY: the caller's arguments, passed on.
    let rc = passing_through(|| unsafe {
        opencl::clSetKernelArgSVMPointer(kernel, arg_index, arg_value)
    });
    Some(mark_set(kernel, arg_index, rc))
}

/// `clEnqueueNDRangeKernel`: a recorded kernel with an argument not set
/// fails at once with `CL_INVALID_KERNEL_ARGS`; a launch that may be
/// invalid otherwise (`crate::checks`) is made synchronously. `None` (the
/// ordinary call) otherwise.
///
/// # Safety
/// OpenCL's contract for `clEnqueueNDRangeKernel` (the arguments are only
/// passed on).
#[allow(clippy::too_many_arguments)]
pub unsafe fn launch_args_set(
    command_queue: opencl::cl_command_queue,
    kernel: opencl::cl_kernel,
    work_dim: opencl::cl_uint,
    global_work_offset: *const usize,
    global_work_size: *const usize,
    local_work_size: *const usize,
    num_events_in_wait_list: opencl::cl_uint,
    event_wait_list: *const opencl::cl_event,
    event: *mut opencl::cl_event,
) -> Option<cl_int> {
    if passing() {
        return None;
    }
    if args_missing(kernel) {
        return Some(opencl::CL_INVALID_KERNEL_ARGS);
    }
    use crate::checks::{Obj, launch_suspect, objects_suspect, synchronously_if};
    // SAFETY: OpenCL's contract: the sizes hold `work_dim` values (1 to 3,
    // required before), the wait list that many events.
    let suspect = unsafe {
        objects_suspect(
            command_queue,
            &[Obj::Kernel(kernel)],
            num_events_in_wait_list,
            event_wait_list,
        ) || launch_suspect(
            command_queue,
            kernel,
            work_dim,
            global_work_offset,
            global_work_size,
            local_work_size,
        )
    };
    // SAFETY: the application's arguments, passed on.
    synchronously_if(suspect, || unsafe {
        opencl::clEnqueueNDRangeKernel(
            command_queue,
            kernel,
            work_dim,
            global_work_offset,
            global_work_size,
            local_work_size,
            num_events_in_wait_list,
            event_wait_list,
            event,
        )
    })
}

/// Whether `kernel` is a recorded kernel with an argument not set.
pub(crate) fn args_missing(kernel: opencl::cl_kernel) -> bool {
    // Whether every argument of a kernel of `count` arguments is set.
    let all_set = |k: &KernelArgs, count: u32| (0..count).all(|i| k.set.contains(&i));
    let known = {
        let all = kernels();
        let Some(k) = all.as_ref().and_then(|a| a.get(&(kernel as usize))) else {
            return false;
        };
        k.count.map(|n| all_set(k, n))
    };
    let all_set = match known {
        Some(set) => set,
        None => {
            // The first launch: the number of arguments, asked once
            // (without holding the records while the call is made).
            let mut n: opencl::cl_uint = 0;
            // SAFETY: `n` is a live cl_uint for the query's one output.
            let rc = unsafe {
                opencl::clGetKernelInfo(
                    kernel,
                    opencl::CL_KERNEL_NUM_ARGS,
                    size_of::<opencl::cl_uint>(),
                    (&mut n as *mut opencl::cl_uint).cast(),
                    std::ptr::null_mut(),
                )
            };
            if rc != opencl::CL_SUCCESS {
                return false;
            }
            let mut all = kernels();
            let Some(k) = all.as_mut().and_then(|a| a.get_mut(&(kernel as usize))) else {
                return false;
            };
            k.count = Some(n);
            all_set(k, n)
        }
    };
    !all_set
}

/// Events of commands the guest library makes out of others (a map out of
/// a read, an SVM copy out of a marker), by wire id: the command type the
/// application asked for, which `clGetEventInfo(CL_EVENT_COMMAND_TYPE)`
/// answers as the driver would. Wire ids are never reused.
static COMMAND_TYPES: Mutex<Option<HashMap<u64, opencl::cl_command_type>>> = Mutex::new(None);

fn command_types() -> std::sync::MutexGuard<'static, Option<HashMap<u64, opencl::cl_command_type>>>
{
    COMMAND_TYPES.lock().unwrap_or_else(|p| p.into_inner())
}

fn wire_id(event: opencl::cl_event) -> u64 {
    remoting::guest::objects::id_of(event as usize)
}

/// Records that `*event` (when the application asked for an event and the
/// call succeeded) is the event of a `command` command.
pub(crate) fn name_command(
    event: *mut opencl::cl_event,
    rc: cl_int,
    command: opencl::cl_command_type,
) {
    if rc != opencl::CL_SUCCESS || event.is_null() {
        return;
    }
    // SAFETY: OpenCL's contract: `event` is writable, and the call that
    // succeeded wrote the new event there.
    let e = unsafe { *event };
    if !e.is_null() {
        command_types()
            .get_or_insert_with(HashMap::new)
            .insert(wire_id(e), command);
    }
}

/// `clGetEventInfo(CL_EVENT_COMMAND_TYPE)` of an event named by
/// [`name_command`]; `None` (the ordinary call) for anything else.
///
/// # Safety
/// OpenCL's contract for `clGetEventInfo`.
pub unsafe fn event_info(
    event: opencl::cl_event,
    param_name: opencl::cl_event_info,
    param_value_size: usize,
    param_value: *mut std::ffi::c_void,
    param_value_size_ret: *mut usize,
) -> Option<cl_int> {
    if param_name != opencl::CL_EVENT_COMMAND_TYPE || event.is_null() {
        return None;
    }
    let ty = command_types().as_ref()?.get(&wire_id(event)).copied()?;
    let size = size_of::<opencl::cl_command_type>();
    if !param_value.is_null() {
        if param_value_size < size {
            return Some(opencl::CL_INVALID_VALUE);
        }
        // SAFETY: OpenCL's contract: `param_value` holds
        // `param_value_size` bytes (enough, checked above).
        unsafe { std::ptr::write_unaligned(param_value.cast(), ty) };
    }
    if !param_value_size_ret.is_null() {
        // SAFETY: OpenCL's contract: writable.
        unsafe { *param_value_size_ret = size };
    }
    Some(opencl::CL_SUCCESS)
}

/// `clReleaseEvent` of an event named by [`name_command`]: made, and the
/// name forgotten once the application's last reference is gone. `None`
/// (the ordinary call) for any other event.
///
/// # Safety
/// OpenCL's contract for `clReleaseEvent`.
pub unsafe fn release_event(event: opencl::cl_event) -> Option<cl_int> {
    if passing() || event.is_null() {
        return None;
    }
    let id = wire_id(event);
    command_types().as_ref()?.get(&id)?;
    // SAFETY: the application's event, passed on.
    let rc = passing_through(|| unsafe { opencl::clReleaseEvent(event) });
    // The last reference poisons the application's object: its id changes.
    if wire_id(event) != id
        && let Some(m) = command_types().as_mut()
    {
        m.remove(&id);
    }
    Some(rc)
}
