//! Hand-written checks that the OpenCL spec names with `guard(NAME)`: rules
//! about argument *contents* that a specification cannot state. Each runs on
//! the decoded, translated arguments before the real function is called.

use std::ffi::c_void;

use remoting::worker::{CallCtx, DispatchError};

use crate::opencl::{self, Api, cl_kernel, cl_uint};

pub use crate::svm::{
    svm_alloc, svm_exec_info, svm_fill, svm_free, svm_kernel_arg, svm_map, svm_memcpy, svm_unmap,
};

const CL_KERNEL_ARG_ADDRESS_QUALIFIER: u32 = 0x1196;
const CL_KERNEL_ARG_ADDRESS_GLOBAL: u32 = 0x119B;
const CL_KERNEL_ARG_ADDRESS_CONSTANT: u32 = 0x119C;
const CL_KERNEL_ARG_TYPE_NAME: u32 = 0x1198;

/// `clSetKernelArg`: a pointer-sized value given for a `__global` or
/// `__constant` buffer argument (or a `sampler_t`) must be NULL or a live
/// object of this guest — the driver dereferences it. Anything else is
/// `CL_INVALID_MEM_OBJECT` / `CL_INVALID_SAMPLER`, as an invalid object is
/// natively.
///
/// # Safety
/// The arguments are those the dispatcher would pass to `clSetKernelArg`:
/// `arg_value` is NULL or points to `arg_size` readable bytes.
pub unsafe fn kernel_arg(
    api: &Api,
    cx: &CallCtx<'_>,
    kernel: cl_kernel,
    arg_index: cl_uint,
    arg_size: usize,
    arg_value: *const c_void,
) -> Result<(), DispatchError> {
    if arg_value.is_null() || arg_size != size_of::<u64>() {
        return Ok(());
    }
    // SAFETY: the dispatcher checked that `arg_value` holds `arg_size` (8)
    // bytes of worker memory; it may be unaligned.
    let value = unsafe { std::ptr::read_unaligned(arg_value.cast::<u64>()) };
    if value == 0
        || cx.is_live_host(opencl::kind::cl_mem, value)
        || cx.is_live_host(opencl::kind::cl_sampler, value)
    {
        return Ok(());
    }
    let Some(info) = api.clGetKernelArgInfo else {
        return Err(DispatchError::Api(opencl::CL_INVALID_MEM_OBJECT.into()));
    };
    let mut qualifier: u32 = 0;
    // SAFETY: `kernel` is a live kernel of this guest (translated); the
    // output is a local of the size passed.
    let rc = unsafe {
        info(
            kernel,
            arg_index,
            CL_KERNEL_ARG_ADDRESS_QUALIFIER,
            size_of::<u32>(),
            (&mut qualifier as *mut u32).cast(),
            std::ptr::null_mut(),
        )
    };
    if rc != 0 {
        // Without argument information the value cannot be told from a
        // plain 8-byte scalar; let the driver validate the index and size.
        return Ok(());
    }
    if qualifier == CL_KERNEL_ARG_ADDRESS_GLOBAL || qualifier == CL_KERNEL_ARG_ADDRESS_CONSTANT {
        return Err(DispatchError::Api(opencl::CL_INVALID_MEM_OBJECT.into()));
    }
    let mut name = [0u8; 64];
    // SAFETY: as above, with a 64-byte local buffer.
    let rc = unsafe {
        info(
            kernel,
            arg_index,
            CL_KERNEL_ARG_TYPE_NAME,
            name.len(),
            name.as_mut_ptr().cast(),
            std::ptr::null_mut(),
        )
    };
    if rc == 0 && name.starts_with(b"sampler_t") {
        return Err(DispatchError::Api(opencl::CL_INVALID_SAMPLER.into()));
    }
    Ok(())
}

/// What `avaBufferAccess` returns when a buffer cannot be read or written
/// in place; the guest library then makes the ordinary call.
pub const NOT_IN_HEAP: opencl::cl_int = 1;

/// One fixed-size value of a `clGet*Info` query on `object`, or `None` when
/// the driver refuses it.
///
/// # Safety
/// `object` is a live object of the kind `query` takes, and `T` is the
/// type (and size) the driver writes for `param`.
pub(crate) unsafe fn info<O, T: Default>(
    query: unsafe extern "C" fn(O, cl_uint, usize, *mut c_void, *mut usize) -> opencl::cl_int,
    object: O,
    param: cl_uint,
) -> Option<T> {
    let mut value = T::default();
    // SAFETY: the caller's guarantees; the output is a local of the size
    // passed.
    let rc = unsafe {
        query(
            object,
            param,
            size_of::<T>(),
            (&mut value as *mut T).cast(),
            std::ptr::null_mut(),
        )
    };
    (rc == 0).then_some(value)
}

/// Whether every device of `context` is a CPU, whose buffers can live in
/// ordinary (here: shared) memory given with `CL_MEM_USE_HOST_PTR`.
pub(crate) fn cpu_context(api: &Api, context: opencl::cl_context) -> bool {
    let (Some(ctx_info), Some(dev_info)) = (api.clGetContextInfo, api.clGetDeviceInfo) else {
        return false;
    };
    let mut devices: [opencl::cl_device_id; 16] = [std::ptr::null_mut(); 16];
    let mut bytes = 0usize;
    // SAFETY: `context` is a live context of this guest (translated); the
    // output is a local array of the size passed.
    let rc = unsafe {
        ctx_info(
            context,
            opencl::CL_CONTEXT_DEVICES,
            size_of_val(&devices),
            devices.as_mut_ptr().cast(),
            &mut bytes,
        )
    };
    if rc != 0 || bytes == 0 || bytes > size_of_val(&devices) {
        return false;
    }
    devices[..bytes / size_of::<opencl::cl_device_id>()]
        .iter()
        .all(|&d| {
            // SAFETY: `d` came from the driver; CL_DEVICE_TYPE is a
            // cl_device_type.
            let ty: Option<opencl::cl_device_type> =
                unsafe { info(dev_info, d, opencl::CL_DEVICE_TYPE) };
            ty.is_some_and(|t| t & opencl::CL_DEVICE_TYPE_CPU != 0)
        })
}

/// Frees a buffer's heap storage when the driver destroys the buffer.
unsafe extern "C" fn free_storage(mem: opencl::cl_mem, user_data: *mut c_void) {
    if user_data.is_null() {
        return;
    }
    // SAFETY: `create_buffer` passed a leaked `Box<Arc<Heap>>` as user data,
    // and the driver calls a destructor callback once.
    let heap = unsafe { Box::from_raw(user_data.cast::<std::sync::Arc<remoting::heap::Heap>>()) };
    heap.detach(mem as u64);
}

/// Whether the guard `name` is turned off (`AVA_UNGUARDED=NAME[,NAME…]` in
/// the worker's environment): a testing aid that lets the driver see an
/// input it mishandles, to check that the executor's crash is contained.
fn unguarded(name: &str) -> bool {
    static OFF: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    OFF.get_or_init(|| {
        std::env::var("AVA_UNGUARDED")
            .map(|v| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    })
    .iter()
    .any(|n| n == name)
}

/// `clCreateCommandQueueWithProperties`: asking for a device-side queue
/// (`CL_QUEUE_ON_DEVICE`) on a device whose
/// `CL_DEVICE_QUEUE_ON_DEVICE_PROPERTIES` is 0 is
/// `CL_INVALID_QUEUE_PROPERTIES` ("values specified in properties are valid
/// but are not supported by the device"). PoCL aborts the process instead,
/// which would take down the executor of every VM of the caller's group.
///
/// # Safety
/// The arguments are those the dispatcher would pass: `properties` is NULL
/// or a (key, value) list ending with a zero key (the dispatcher checked).
pub unsafe fn queue_on_device(
    api: &Api,
    _cx: &CallCtx<'_>,
    _context: opencl::cl_context,
    device: opencl::cl_device_id,
    properties: *const opencl::cl_queue_properties,
    _errcode_ret: *mut opencl::cl_int,
) -> Result<(), DispatchError> {
    if properties.is_null() || device.is_null() || unguarded("queue_on_device") {
        return Ok(());
    }
    let mut i = 0;
    loop {
        // SAFETY: keys sit at even positions up to the zero key, which the
        // dispatcher checked ends the list.
        let key = unsafe { *properties.add(i) };
        if key == 0 {
            return Ok(());
        }
        // SAFETY: a non-zero key is followed by its value (odd length).
        let value = unsafe { *properties.add(i + 1) };
        if key == u64::from(opencl::CL_QUEUE_PROPERTIES) && value & opencl::CL_QUEUE_ON_DEVICE != 0
        {
            let Some(info) = api.clGetDeviceInfo else {
                return Ok(());
            };
            let mut supported: opencl::cl_command_queue_properties = 0;
            // SAFETY: `device` is a live device of this guest (translated);
            // the output is a local of the size passed.
            let rc = unsafe {
                info(
                    device,
                    opencl::CL_DEVICE_QUEUE_ON_DEVICE_PROPERTIES,
                    size_of::<opencl::cl_command_queue_properties>(),
                    (&mut supported as *mut opencl::cl_command_queue_properties).cast(),
                    std::ptr::null_mut(),
                )
            };
            if rc == 0 && supported == 0 {
                tracing::debug!("a device-side queue on a device without one refused");
                return Err(DispatchError::Api(
                    opencl::CL_INVALID_QUEUE_PROPERTIES.into(),
                ));
            }
        }
        i += 2;
    }
}

/// `clCreateBuffer`: on a CPU device, with room in the region's heap, the
/// buffer's storage is placed in the heap (`CL_MEM_USE_HOST_PTR` over
/// shared memory, with the guest's initial data copied there), so that
/// `avaBufferAccess` can give the guest the buffer in place. Buffers with
/// host-access restrictions, or that do not fit, are created as asked.
///
/// # Safety
/// The arguments are those the dispatcher would pass to `clCreateBuffer`:
/// `host_ptr` is NULL or holds `size` readable bytes; `errcode_ret` is NULL
/// or writable.
pub unsafe fn create_buffer(
    api: &Api,
    cx: &mut CallCtx<'_>,
    context: opencl::cl_context,
    flags: opencl::cl_mem_flags,
    size: usize,
    host_ptr: *mut c_void,
    errcode_ret: *mut opencl::cl_int,
) -> Result<opencl::cl_mem, DispatchError> {
    let create = api
        .clCreateBuffer
        .ok_or(DispatchError::Unavailable("clCreateBuffer"))?;
    // SAFETY: the caller's guarantees, passed on unchanged.
    let placed = unsafe { place_buffer(api, cx, context, flags, size, host_ptr, errcode_ret) };
    // SAFETY: the caller's guarantees, passed on unchanged.
    Ok(placed.unwrap_or_else(|| unsafe { create(context, flags, size, host_ptr, errcode_ret) }))
}

/// The heap part of [`create_buffer`]: the buffer created over heap
/// storage (or the driver's NULL, with its error), or `None` when it is not
/// to live in the heap and must be created as asked.
///
/// # Safety
/// As for [`create_buffer`].
unsafe fn place_buffer(
    api: &Api,
    cx: &mut CallCtx<'_>,
    context: opencl::cl_context,
    flags: opencl::cl_mem_flags,
    size: usize,
    host_ptr: *mut c_void,
    errcode_ret: *mut opencl::cl_int,
) -> Option<opencl::cl_mem> {
    let create = api.clCreateBuffer?;
    let restricted = opencl::CL_MEM_USE_HOST_PTR
        | opencl::CL_MEM_HOST_NO_ACCESS
        | opencl::CL_MEM_HOST_READ_ONLY
        | opencl::CL_MEM_HOST_WRITE_ONLY;
    // Initial data given exactly when asked for: anything else is the
    // driver's error to report (CL_INVALID_HOST_PTR), from the plain call.
    let data_ok = (flags & opencl::CL_MEM_COPY_HOST_PTR != 0) != host_ptr.is_null();
    let placed = match &cx.session.heap {
        Some(heap) if flags & restricted == 0 && data_ok && cpu_context(api, context) => heap
            .reserve(size as u64)
            .map(|(block, ptr)| (heap.clone(), block, ptr)),
        _ => None,
    };
    let Some((heap, block, storage)) = placed else {
        if cx.session.heap.is_some() {
            tracing::debug!(size, "buffer in the device's own memory");
        }
        return None;
    };
    if !host_ptr.is_null() {
        // SAFETY: `host_ptr` holds `size` bytes (the caller's guarantee).
        let data = unsafe { std::slice::from_raw_parts(host_ptr.cast::<u8>(), size) };
        if heap.write(block.offset, data).is_err() {
            heap.unreserve(block);
            return None;
        }
    }
    let use_flags = (flags & !(opencl::CL_MEM_COPY_HOST_PTR | opencl::CL_MEM_ALLOC_HOST_PTR))
        | opencl::CL_MEM_USE_HOST_PTR;
    // SAFETY: `storage` is page-aligned shared memory of at least `size`
    // bytes that stays mapped, and reserved for this buffer, until the
    // driver calls the buffer's destructor.
    let mem = unsafe { create(context, use_flags, size, storage.cast(), errcode_ret) };
    if mem.is_null() {
        heap.unreserve(block);
        return Some(mem);
    }
    let user_data = Box::into_raw(Box::new(heap.clone()));
    let rc = match api.clSetMemObjectDestructorCallback {
        // SAFETY: a live buffer; `free_storage` takes back the box once.
        Some(set) => unsafe { set(mem, Some(free_storage), user_data.cast()) },
        None => opencl::CL_INVALID_OPERATION,
    };
    if rc != 0 {
        // Without a destructor the storage could not be freed when the
        // buffer goes: give the buffer up and create it as asked.
        // SAFETY: the driver did not take the box.
        drop(unsafe { Box::from_raw(user_data) });
        if let Some(release) = api.clReleaseMemObject {
            // SAFETY: the buffer just created, which nothing else holds.
            unsafe { release(mem) };
            heap.unreserve(block);
        }
        tracing::warn!(rc, "no destructor callback: buffer left in device memory");
        return None;
    }
    heap.attach(mem as u64, block, size as u64, context as u64);
    tracing::debug!(size, offset = block.offset, "buffer placed in the heap");
    Some(mem)
}

/// `avaCreateSubDevices` (see `specs/opencl.lapis`): `clCreateSubDevices`,
/// its property list of `num_properties` entries copied by the dispatcher.
/// A list that does not end with a 0 is `CL_INVALID_VALUE` (the driver
/// would read past it).
///
/// # Safety
/// The dispatcher's guarantees: `properties` holds `num_properties`
/// entries, `out_devices` is NULL or holds `num_devices`, `num_devices_ret`
/// is NULL or writable.
#[allow(clippy::too_many_arguments)]
pub unsafe fn create_sub_devices(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    in_device: opencl::cl_device_id,
    num_properties: cl_uint,
    properties: *const opencl::cl_device_partition_property,
    num_devices: cl_uint,
    out_devices: *mut opencl::cl_device_id,
    num_devices_ret: *mut cl_uint,
) -> Result<opencl::cl_int, DispatchError> {
    let create = api
        .clCreateSubDevices
        .ok_or(DispatchError::Unavailable("clCreateSubDevices"))?;
    // SAFETY: `properties` holds `num_properties` entries.
    if num_properties == 0 || unsafe { *properties.add(num_properties as usize - 1) } != 0 {
        return Ok(opencl::CL_INVALID_VALUE);
    }
    // SAFETY: the caller's guarantees, passed on; the list is terminated.
    Ok(unsafe {
        create(
            in_device,
            properties,
            num_devices,
            out_devices,
            num_devices_ret,
        )
    })
}

/// `avaProgramBinary` (see `specs/opencl.lapis`): the binary of the
/// program's device number `index`, into `binary` (`size` bytes). The other
/// devices' entries of the pointer array are NULL, which the specification
/// says the driver skips.
///
/// # Safety
/// `binary` is NULL or holds `size` writable bytes (the dispatcher's
/// guarantee).
pub unsafe fn program_binary(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    program: opencl::cl_program,
    index: cl_uint,
    size: usize,
    binary: *mut c_void,
) -> Result<opencl::cl_int, DispatchError> {
    let query = api
        .clGetProgramInfo
        .ok_or(DispatchError::Unavailable("clGetProgramInfo"))?;
    // SAFETY: a live program of this guest (translated).
    let Some(n) = (unsafe { info::<_, cl_uint>(query, program, opencl::CL_PROGRAM_NUM_DEVICES) })
    else {
        return Ok(opencl::CL_INVALID_PROGRAM);
    };
    let n = n as usize;
    if index as usize >= n || binary.is_null() || n > 4096 {
        return Ok(opencl::CL_INVALID_VALUE);
    }
    let mut sizes = vec![0usize; n];
    // SAFETY: `sizes` holds `n` size_t, the size passed.
    let rc = unsafe {
        query(
            program,
            opencl::CL_PROGRAM_BINARY_SIZES,
            n * size_of::<usize>(),
            sizes.as_mut_ptr().cast(),
            std::ptr::null_mut(),
        )
    };
    if rc != 0 {
        return Ok(rc);
    }
    if size < sizes[index as usize] {
        return Ok(opencl::CL_INVALID_VALUE);
    }
    let mut ptrs = vec![std::ptr::null_mut::<u8>(); n];
    ptrs[index as usize] = binary.cast();
    // SAFETY: `ptrs` holds `n` pointers, NULL but for `binary`, which holds
    // at least that device's binary size (checked above).
    Ok(unsafe {
        query(
            program,
            opencl::CL_PROGRAM_BINARIES,
            n * size_of::<*mut u8>(),
            ptrs.as_mut_ptr().cast(),
            std::ptr::null_mut(),
        )
    })
}

/// `avaBufferAccess` (see `specs/opencl.lapis`): when `buffer` lives in the
/// heap, `command_queue` is in order and of its context and the range is
/// inside it, waits for the queue to finish and returns the range's heap
/// offset. For
/// a buffer in the heap, a range out of bounds is `CL_INVALID_VALUE` and a
/// queue of another context `CL_INVALID_CONTEXT`, as the driver says for a
/// read or write. Anything else is [`NOT_IN_HEAP`], for the guest to make
/// the ordinary call (which reports any error as the driver does).
///
/// # Safety
/// `heap_offset` is NULL or writable (the dispatcher's guarantee).
pub unsafe fn buffer_access(
    api: &Api,
    cx: &mut CallCtx<'_>,
    command_queue: opencl::cl_command_queue,
    buffer: opencl::cl_mem,
    offset: usize,
    size: usize,
    heap_offset: *mut opencl::cl_ulong,
) -> Result<opencl::cl_int, DispatchError> {
    let (Some(heap), Some(queue_info), Some(finish)) = (
        cx.session.heap.as_ref(),
        api.clGetCommandQueueInfo,
        api.clFinish,
    ) else {
        return Ok(NOT_IN_HEAP);
    };
    let Some(p) = heap.placement(buffer as u64) else {
        return Ok(NOT_IN_HEAP);
    };
    if heap_offset.is_null() {
        return Ok(NOT_IN_HEAP);
    }
    let inside = size > 0
        && (offset as u64)
            .checked_add(size as u64)
            .is_some_and(|e| e <= p.len);
    if !inside {
        return Ok(opencl::CL_INVALID_VALUE);
    }
    // SAFETY: a live queue of this guest (translated); CL_QUEUE_CONTEXT is
    // a cl_context (read as its address).
    let Some(context) =
        (unsafe { info::<_, usize>(queue_info, command_queue, opencl::CL_QUEUE_CONTEXT) })
    else {
        return Ok(NOT_IN_HEAP);
    };
    if context as u64 != p.tag {
        return Ok(opencl::CL_INVALID_CONTEXT);
    }
    // On an out-of-order queue a read or write without events need not wait
    // for earlier commands (one may wait for a user event the application
    // sets later): `clFinish` could wait where the driver would not.
    // SAFETY: as above; CL_QUEUE_PROPERTIES is a cl_command_queue_properties.
    let props: Option<opencl::cl_command_queue_properties> =
        unsafe { info(queue_info, command_queue, opencl::CL_QUEUE_PROPERTIES) };
    if props.is_none_or(|p| p & opencl::CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE != 0) {
        return Ok(NOT_IN_HEAP);
    }
    // Every command enqueued before this call (by any thread, including
    // this channel's earlier asynchronous calls, which the worker has
    // already made) completes before the guest touches the bytes.
    // SAFETY: a live queue.
    if unsafe { finish(command_queue) } != 0 {
        return Ok(NOT_IN_HEAP);
    }
    // The guest moves the bytes itself: they count (and are rate limited)
    // here.
    cx.consume(
        server::policy::resource::IN_PLACE,
        size as u64,
        opencl::REFUSED_ERROR,
    )?;
    // SAFETY: checked non-NULL; the dispatcher sized it for one cl_ulong.
    unsafe { heap_offset.write_unaligned(p.offset + offset as u64) };
    Ok(0)
}

pub use crate::accounting::{charge_memory, launch, launch_task};
