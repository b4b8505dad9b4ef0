//! The exported driver API: `cuda.h`'s C ABI, the `_v2` names where
//! `cuda.h` defines them. Every function validates its handles against the
//! live tables before use and returns the driver's error codes; none
//! panics across the C boundary.
//!
//! Safety contract of every function here: the one `cuda.h` documents for
//! it (out-parameters point to writable objects of their C type, host
//! buffers hold the bytes named, strings are NUL-terminated).
#![allow(clippy::missing_safety_doc, clippy::too_many_arguments)]

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use crate::errors::*;
use crate::state::{self, Ctx, Event, Func, Kind, R, State, Stream, handle, id_of};
use crate::{CUdevice, CUdeviceptr, CUresult, DEVICE_NAME, DRIVER_VERSION, Handle, TOTAL_MEM};

/// Runs an API body: its error code, `CUDA_ERROR_UNKNOWN` if it panicked.
pub(crate) fn api(f: impl FnOnce() -> R<()>) -> CUresult {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CUDA_SUCCESS,
        Ok(Err(e)) => e,
        Err(_) => CUDA_ERROR_UNKNOWN,
    }
}

/// Runs an API body that computes a value: the value, or the error code
/// (`CUDA_ERROR_UNKNOWN` if it panicked).
fn api_value<T>(f: impl FnOnce() -> R<T>) -> Result<T, CUresult> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(CUDA_ERROR_UNKNOWN),
    }
}

/// Writes `$v` through the out-parameter `$p`; `CUDA_ERROR_INVALID_VALUE`
/// if it is null.
macro_rules! put {
    ($p:expr, $v:expr) => {{
        let p = $p;
        if p.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let v = $v;
        // SAFETY: `p` is non-null and, per the function's cuda.h contract,
        // points to a writable object of its type.
        unsafe { p.write(v) }
    }};
}

fn device(dev: CUdevice) -> R<()> {
    if dev == 0 {
        Ok(())
    } else {
        Err(CUDA_ERROR_INVALID_DEVICE)
    }
}

/// The host bytes `[p, p + n)`; `n == 0` gives an empty slice.
///
/// # Safety
/// `p` must be valid for reads of `n` bytes.
unsafe fn host<'a>(p: *const c_void, n: usize) -> R<&'a [u8]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: the caller guarantees `p` is valid for `n` bytes.
    Ok(unsafe { std::slice::from_raw_parts(p.cast(), n) })
}

/// The writable host bytes `[p, p + n)`.
///
/// # Safety
/// `p` must be valid for writes of `n` bytes.
unsafe fn host_mut<'a>(p: *mut c_void, n: usize) -> R<&'a mut [u8]> {
    if n == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: the caller guarantees `p` is valid for writes of `n` bytes.
    Ok(unsafe { std::slice::from_raw_parts_mut(p.cast(), n) })
}

pub(crate) fn cstr<'a>(p: *const c_char) -> R<&'a str> {
    if p.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: non-null, and cuda.h's contract makes it a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| CUDA_ERROR_INVALID_VALUE)
}

// ---------------------------------------------------------------- init, version, errors

/// `cuInit`: initializes the driver; `Flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuInit(flags: c_uint) -> CUresult {
    api(|| {
        if flags != 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        state::init();
        Ok(())
    })
}

/// `cuDriverGetVersion`: 12080 (CUDA 12.8); works before `cuInit`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDriverGetVersion(version: *mut c_int) -> CUresult {
    api(|| {
        put!(version, DRIVER_VERSION);
        Ok(())
    })
}

/// `cuGetErrorName`: the code's enum name.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetErrorName(error: CUresult, p_str: *mut *const c_char) -> CUresult {
    api(|| match describe(error) {
        Some((name, _)) => {
            put!(p_str, name.as_ptr().cast());
            Ok(())
        }
        None => {
            put!(p_str, std::ptr::null());
            Err(CUDA_ERROR_INVALID_VALUE)
        }
    })
}

/// `cuGetErrorString`: the code's description.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetErrorString(error: CUresult, p_str: *mut *const c_char) -> CUresult {
    api(|| match describe(error) {
        Some((_, text)) => {
            put!(p_str, text.as_ptr().cast());
            Ok(())
        }
        None => {
            put!(p_str, std::ptr::null());
            Err(CUDA_ERROR_INVALID_VALUE)
        }
    })
}

/// `cuGetExportTable`: private driver interfaces; not supported.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetExportTable(
    _pp_export_table: *mut *const c_void,
    _p_export_table_id: *const c_void,
) -> CUresult {
    CUDA_ERROR_NOT_SUPPORTED
}

/// `cuProfilerStart`: nothing to profile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuProfilerStart() -> CUresult {
    api(|| state::with(|st| st.current().map(drop)))
}

/// `cuProfilerStop`: nothing to profile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuProfilerStop() -> CUresult {
    api(|| state::with(|st| st.current().map(drop)))
}

// ---------------------------------------------------------------- devices

/// `cuDeviceGetCount`: one device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> CUresult {
    api(|| {
        state::with(|_| Ok(()))?;
        put!(count, 1);
        Ok(())
    })
}

/// `cuDeviceGet`: the device of ordinal 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGet(dev: *mut CUdevice, ordinal: c_int) -> CUresult {
    api(|| {
        state::with(|_| Ok(()))?;
        device(ordinal)?;
        put!(dev, 0);
        Ok(())
    })
}

/// `cuDeviceGetName`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CUdevice) -> CUresult {
    api(|| {
        state::with(|_| Ok(()))?;
        device(dev)?;
        if name.is_null() || len <= 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let bytes = DEVICE_NAME.as_bytes();
        let n = bytes.len().min(len as usize - 1);
        // SAFETY: `name` holds `len` writable bytes (cuda.h); `n < len`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), name.cast::<u8>(), n);
            name.add(n).write(0);
        }
        Ok(())
    })
}

/// Values of `CUdevice_attribute`s: an A100-like device (compute
/// capability 8.0) with no memory pools, no managed or mapped memory.
pub fn attribute(attr: c_int) -> Option<c_int> {
    Some(match attr {
        1 => 1024,       // MAX_THREADS_PER_BLOCK
        2 | 3 => 1024,   // MAX_BLOCK_DIM_X, _Y
        4 => 64,         // MAX_BLOCK_DIM_Z
        5 => i32::MAX,   // MAX_GRID_DIM_X
        6 | 7 => 65535,  // MAX_GRID_DIM_Y, _Z
        8 => 49152,      // MAX_SHARED_MEMORY_PER_BLOCK
        9 => 65536,      // TOTAL_CONSTANT_MEMORY
        10 => 32,        // WARP_SIZE
        11 => i32::MAX,  // MAX_PITCH
        12 => 65536,     // MAX_REGISTERS_PER_BLOCK
        13 => 1_410_000, // CLOCK_RATE (kHz)
        14 => 512,       // TEXTURE_ALIGNMENT
        15 => 1,         // GPU_OVERLAP
        16 => 4,         // MULTIPROCESSOR_COUNT
        17..=20 => 0,    // KERNEL_EXEC_TIMEOUT, INTEGRATED, CAN_MAP_HOST_MEMORY, COMPUTE_MODE
        30 => 512,       // SURFACE_ALIGNMENT
        31 => 1,         // CONCURRENT_KERNELS
        32..=35 => 0,    // ECC_ENABLED, PCI_BUS_ID, PCI_DEVICE_ID, TCC_DRIVER
        36 => 1_215_000, // MEMORY_CLOCK_RATE (kHz)
        37 => 5120,      // GLOBAL_MEMORY_BUS_WIDTH
        38 => 40 << 20,  // L2_CACHE_SIZE
        39 => 2048,      // MAX_THREADS_PER_MULTIPROCESSOR
        40 => 2,         // ASYNC_ENGINE_COUNT
        41 => 1,         // UNIFIED_ADDRESSING
        50 => 0,         // PCI_DOMAIN_ID
        51 => 32,        // TEXTURE_PITCH_ALIGNMENT
        75 => 8,         // COMPUTE_CAPABILITY_MAJOR
        76 => 0,         // COMPUTE_CAPABILITY_MINOR
        78..=80 => 1, // STREAM_PRIORITIES_SUPPORTED, GLOBAL_L1_CACHE_SUPPORTED, LOCAL_L1_CACHE_SUPPORTED
        81 => 167_936, // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
        82 => 65536,  // MAX_REGISTERS_PER_MULTIPROCESSOR
        83..=86 => 0, // MANAGED_MEMORY, MULTI_GPU_BOARD, _GROUP_ID, HOST_NATIVE_ATOMIC_SUPPORTED
        87 => 2,      // SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO
        88 | 89 => 0, // PAGEABLE_MEMORY_ACCESS, CONCURRENT_MANAGED_ACCESS
        90 => 1,      // COMPUTE_PREEMPTION_SUPPORTED
        91..=96 => 0, // host pointer for registered memory, stream mem ops, cooperative launch
        97 => 49152,  // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        98 => 0,      // CAN_FLUSH_REMOTE_WRITES
        99 => 1,      // HOST_REGISTER_SUPPORTED
        100..=105 => 0, // page tables, managed access, VMM, IPC handle types
        106 => 32,    // MAX_BLOCKS_PER_MULTIPROCESSOR
        107..=110 => 0, // compression, persisting L2, access policy, RDMA with VMM
        111 => 1024,  // RESERVED_SHARED_MEMORY_PER_BLOCK
        112..=114 => 0, // sparse arrays, read-only host register, timeline semaphores
        115 => 1,     // MEMORY_POOLS_SUPPORTED
        116..=119 => 0, // GPUDirect RDMA, mempool handle types
        _ => return None,
    })
}

/// `cuDeviceGetAttribute`; an unknown attribute is `CUDA_ERROR_INVALID_VALUE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetAttribute(
    pi: *mut c_int,
    attrib: c_int,
    dev: CUdevice,
) -> CUresult {
    api(|| {
        state::with(|_| Ok(()))?;
        device(dev)?;
        put!(pi, attribute(attrib).ok_or(CUDA_ERROR_INVALID_VALUE)?);
        Ok(())
    })
}

const UUID: [u8; 16] = *b"ava-cuda-standin";

/// `cuDeviceGetUuid`: a fixed UUID.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetUuid(uuid: *mut [u8; 16], dev: CUdevice) -> CUresult {
    api(|| {
        state::with(|_| Ok(()))?;
        device(dev)?;
        put!(uuid, UUID);
        Ok(())
    })
}

/// `cuDeviceGetUuid_v2`: a fixed UUID.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetUuid_v2(uuid: *mut [u8; 16], dev: CUdevice) -> CUresult {
    // SAFETY: same contract.
    unsafe { cuDeviceGetUuid(uuid, dev) }
}

/// `cuDeviceTotalMem_v2`: 2 GiB.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CUdevice) -> CUresult {
    api(|| {
        state::with(|_| Ok(()))?;
        device(dev)?;
        put!(bytes, TOTAL_MEM as usize);
        Ok(())
    })
}

/// `cuDeviceComputeCapability`: 8.0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceComputeCapability(
    major: *mut c_int,
    minor: *mut c_int,
    dev: CUdevice,
) -> CUresult {
    api(|| {
        state::with(|_| Ok(()))?;
        device(dev)?;
        put!(major, 8);
        put!(minor, 0);
        Ok(())
    })
}

/// `cuDeviceGetPCIBusId`: `0000:00:00.0`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetPCIBusId(
    bus_id: *mut c_char,
    len: c_int,
    dev: CUdevice,
) -> CUresult {
    api(|| {
        state::with(|_| Ok(()))?;
        device(dev)?;
        let id = b"0000:00:00.0";
        if bus_id.is_null() || len <= 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let n = id.len().min(len as usize - 1);
        // SAFETY: `bus_id` holds `len` writable bytes; `n < len`.
        unsafe {
            std::ptr::copy_nonoverlapping(id.as_ptr(), bus_id.cast::<u8>(), n);
            bus_id.add(n).write(0);
        }
        Ok(())
    })
}

/// `cuDeviceCanAccessPeer`: there is no peer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceCanAccessPeer(
    can: *mut c_int,
    dev: CUdevice,
    peer: CUdevice,
) -> CUresult {
    api(|| {
        state::with(|_| Ok(()))?;
        device(dev)?;
        device(peer)?;
        put!(can, 0);
        Ok(())
    })
}

// ---------------------------------------------------------------- primary context

fn new_ctx(primary: bool, flags: u32) -> Ctx {
    Ctx {
        primary,
        active: true,
        retain: 0,
        flags,
        sticky: None,
        limits: Default::default(),
        cache_config: 0,
    }
}

/// `cuDevicePrimaryCtxRetain`: the device's primary context, retained.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(pctx: *mut Handle, dev: CUdevice) -> CUresult {
    api(|| {
        let id = state::with(|st| {
            device(dev)?;
            let id = match st.primary {
                Some(id) => id,
                None => {
                    let id = st.id();
                    let mut c = new_ctx(true, st.primary_flags);
                    c.active = false;
                    st.contexts.insert(id, c);
                    st.primary = Some(id);
                    id
                }
            };
            let flags = st.primary_flags;
            let c = st.contexts.get_mut(&id).ok_or(CUDA_ERROR_UNKNOWN)?;
            if !c.active {
                c.active = true;
                c.sticky = None;
                c.flags = flags;
            }
            c.retain += 1;
            Ok(id)
        })?;
        put!(pctx, handle(Kind::Ctx, id));
        Ok(())
    })
}

fn primary_reset(st: &mut State, id: u64) {
    st.drop_resources(id);
    if let Some(c) = st.contexts.get_mut(&id) {
        c.sticky = None;
        c.limits.clear();
    }
}

/// `cuDevicePrimaryCtxRelease_v2`: the last release destroys its resources.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) -> CUresult {
    api(|| {
        state::with(|st| {
            device(dev)?;
            let id = st.primary.ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
            let c = st.contexts.get_mut(&id).ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
            if !c.active || c.retain == 0 {
                return Err(CUDA_ERROR_INVALID_CONTEXT);
            }
            c.retain -= 1;
            if c.retain == 0 {
                c.active = false;
                primary_reset(st, id);
            }
            Ok(())
        })
    })
}

/// `cuDevicePrimaryCtxReset_v2`: destroys its resources and clears a fault.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxReset_v2(dev: CUdevice) -> CUresult {
    api(|| {
        state::with(|st| {
            device(dev)?;
            if let Some(id) = st.primary {
                primary_reset(st, id);
            }
            Ok(())
        })
    })
}

/// `cuDevicePrimaryCtxGetState`: its flags and whether it is active.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxGetState(
    dev: CUdevice,
    flags: *mut c_uint,
    active: *mut c_int,
) -> CUresult {
    api(|| {
        let (f, a) = state::with(|st| {
            device(dev)?;
            let a = st
                .primary
                .and_then(|id| st.contexts.get(&id))
                .is_some_and(|c| c.active);
            Ok((st.primary_flags, a))
        })?;
        put!(flags, f);
        put!(active, a as c_int);
        Ok(())
    })
}

/// `cuDevicePrimaryCtxSetFlags_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxSetFlags_v2(dev: CUdevice, flags: c_uint) -> CUresult {
    api(|| {
        state::with(|st| {
            device(dev)?;
            st.primary_flags = flags;
            if let Some(c) = st.primary.and_then(|id| st.contexts.get_mut(&id)) {
                c.flags = flags;
            }
            Ok(())
        })
    })
}

// ---------------------------------------------------------------- contexts

/// `cuCtxCreate_v2`: a new context, pushed on the calling thread's stack.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxCreate_v2(
    pctx: *mut Handle,
    flags: c_uint,
    dev: CUdevice,
) -> CUresult {
    api(|| {
        if pctx.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let id = state::with(|st| {
            device(dev)?;
            let id = st.id();
            st.contexts.insert(id, new_ctx(false, flags));
            Ok(id)
        })?;
        state::stack(|s| s.push(id));
        put!(pctx, handle(Kind::Ctx, id));
        Ok(())
    })
}

/// `cuCtxCreate_v3`: as `cuCtxCreate_v2`; execution affinity is not supported.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxCreate_v3(
    pctx: *mut Handle,
    params: *mut c_void,
    num_params: c_int,
    flags: c_uint,
    dev: CUdevice,
) -> CUresult {
    if !params.is_null() && num_params > 0 {
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    // SAFETY: same contract as cuCtxCreate_v2.
    unsafe { cuCtxCreate_v2(pctx, flags, dev) }
}

/// `cuCtxCreate_v4`: as `cuCtxCreate_v2`; creation parameters are not supported.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxCreate_v4(
    pctx: *mut Handle,
    params: *mut c_void,
    flags: c_uint,
    dev: CUdevice,
) -> CUresult {
    if !params.is_null() {
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    // SAFETY: same contract as cuCtxCreate_v2.
    unsafe { cuCtxCreate_v2(pctx, flags, dev) }
}

/// `cuCtxDestroy_v2`: destroys a (non-primary) context and all it owns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxDestroy_v2(ctx: Handle) -> CUresult {
    api(|| {
        let id = state::with(|st| {
            let id = id_of(Kind::Ctx, ctx).ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
            let c = st.contexts.get(&id).ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
            if c.primary {
                return Err(CUDA_ERROR_INVALID_CONTEXT);
            }
            st.drop_resources(id);
            st.contexts.remove(&id);
            Ok(id)
        })?;
        state::stack(|s| {
            if s.last() == Some(&id) {
                s.pop();
            }
        });
        Ok(())
    })
}

/// `cuCtxSetCurrent`: replaces the top of the stack (NULL pops it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxSetCurrent(ctx: Handle) -> CUresult {
    api(|| {
        if ctx.is_null() {
            state::with(|_| Ok(()))?;
            state::stack(|s| s.pop());
            return Ok(());
        }
        let id = state::with(|st| st.ctx_handle(ctx))?;
        state::stack(|s| {
            s.pop();
            s.push(id);
        });
        Ok(())
    })
}

/// `cuCtxGetCurrent`: the top of the stack, NULL if empty.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetCurrent(pctx: *mut Handle) -> CUresult {
    api(|| {
        state::with(|_| Ok(()))?;
        let h = state::top().map_or(std::ptr::null_mut(), |id| handle(Kind::Ctx, id));
        put!(pctx, h);
        Ok(())
    })
}

/// `cuCtxPushCurrent_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxPushCurrent_v2(ctx: Handle) -> CUresult {
    api(|| {
        let id = state::with(|st| st.ctx_handle(ctx))?;
        state::stack(|s| s.push(id));
        Ok(())
    })
}

/// `cuCtxPopCurrent_v2`: pops the stack; the popped context in `pctx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxPopCurrent_v2(pctx: *mut Handle) -> CUresult {
    api(|| {
        state::with(|_| Ok(()))?;
        let id = state::stack(|s| s.pop()).ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
        if !pctx.is_null() {
            put!(pctx, handle(Kind::Ctx, id));
        }
        Ok(())
    })
}

/// `cuCtxGetDevice`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetDevice(dev: *mut CUdevice) -> CUresult {
    api(|| {
        state::with(|st| st.current())?;
        put!(dev, 0);
        Ok(())
    })
}

/// `cuCtxSynchronize`: work runs when enqueued; returns a sticky fault.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxSynchronize() -> CUresult {
    api(|| state::with(|st| st.current().map(drop)))
}

/// `cuCtxGetApiVersion`: 3020.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetApiVersion(ctx: Handle, version: *mut c_uint) -> CUresult {
    api(|| {
        state::with(|st| {
            if ctx.is_null() {
                st.current()
            } else {
                st.ctx_handle(ctx)
            }
        })?;
        put!(version, 3020);
        Ok(())
    })
}

/// `cuCtxGetFlags`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetFlags(flags: *mut c_uint) -> CUresult {
    api(|| {
        let f = state::with(|st| {
            let id = st.current()?;
            Ok(st.ctx(id)?.flags)
        })?;
        put!(flags, f);
        Ok(())
    })
}

/// `cuCtxSetFlags`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxSetFlags(flags: c_uint) -> CUresult {
    api(|| {
        state::with(|st| {
            let id = st.current()?;
            if let Some(c) = st.contexts.get_mut(&id) {
                c.flags = flags;
            }
            Ok(())
        })
    })
}

/// `cuCtxGetId`: the context's unique id.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetId(ctx: Handle, ctx_id: *mut u64) -> CUresult {
    api(|| {
        let id = state::with(|st| {
            if ctx.is_null() {
                st.current()
            } else {
                st.ctx_handle(ctx)
            }
        })?;
        put!(ctx_id, id);
        Ok(())
    })
}

fn default_limit(limit: c_uint) -> R<usize> {
    Ok(match limit {
        0 => 1024,    // STACK_SIZE
        1 => 1 << 20, // PRINTF_FIFO_SIZE
        2 => 8 << 20, // MALLOC_HEAP_SIZE
        3 => 2,       // DEV_RUNTIME_SYNC_DEPTH
        4 => 2048,    // DEV_RUNTIME_PENDING_LAUNCH_COUNT
        5 => 32,      // MAX_L2_FETCH_GRANULARITY
        6 => 0,       // PERSISTING_L2_CACHE_SIZE
        _ => return Err(CUDA_ERROR_UNSUPPORTED_LIMIT),
    })
}

/// `cuCtxGetLimit`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetLimit(value: *mut usize, limit: c_uint) -> CUresult {
    api(|| {
        let v = state::with(|st| {
            let c = st.ctx(st.current()?)?;
            match c.limits.get(&limit) {
                Some(v) => Ok(*v),
                None => default_limit(limit),
            }
        })?;
        put!(value, v);
        Ok(())
    })
}

/// `cuCtxSetLimit`: recorded and reported back, otherwise without effect.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxSetLimit(limit: c_uint, value: usize) -> CUresult {
    api(|| {
        state::with(|st| {
            let id = st.current()?;
            default_limit(limit)?;
            if let Some(c) = st.contexts.get_mut(&id) {
                c.limits.insert(limit, value);
            }
            Ok(())
        })
    })
}

/// `cuCtxGetCacheConfig`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetCacheConfig(config: *mut c_uint) -> CUresult {
    api(|| {
        let v = state::with(|st| Ok(st.ctx(st.current()?)?.cache_config))?;
        put!(config, v);
        Ok(())
    })
}

/// `cuCtxSetCacheConfig`: recorded, without effect.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxSetCacheConfig(config: c_uint) -> CUresult {
    api(|| {
        state::with(|st| {
            let id = st.current()?;
            if config > 3 {
                return Err(CUDA_ERROR_INVALID_VALUE);
            }
            if let Some(c) = st.contexts.get_mut(&id) {
                c.cache_config = config;
            }
            Ok(())
        })
    })
}

/// `cuCtxGetStreamPriorityRange`: 0 (least) to -5 (greatest).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetStreamPriorityRange(
    least: *mut c_int,
    greatest: *mut c_int,
) -> CUresult {
    api(|| {
        state::with(|st| st.current())?;
        if !least.is_null() {
            put!(least, 0);
        }
        if !greatest.is_null() {
            put!(greatest, -5);
        }
        Ok(())
    })
}

// ---------------------------------------------------------------- modules and functions

pub(crate) fn load_module(pmod: *mut Handle, text: &str) -> R<()> {
    if pmod.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let id = state::with(|st| {
        let ctx = st.current()?;
        st.load_ptx(ctx, text)
    })?;
    put!(pmod, handle(Kind::Module, id));
    Ok(())
}

/// The PTX text of a module image: NUL-terminated text. Cubins (ELF) and
/// fatbins hold machine code the stand-in cannot run.
pub(crate) fn image_text<'a>(image: *const c_void) -> R<&'a str> {
    if image.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: a module image holds at least 4 bytes (an ELF or fatbin
    // header, or PTX text with its terminator).
    let head = unsafe { std::slice::from_raw_parts(image.cast::<u8>(), 4) };
    if head == b"\x7fELF" || head == [0x50, 0xed, 0x55, 0xba] || head == [0x46, 0x62, 0x1f, 0x46] {
        return Err(CUDA_ERROR_NO_BINARY_FOR_GPU);
    }
    // SAFETY: not a binary image, so NUL-terminated PTX text (cuda.h).
    unsafe { CStr::from_ptr(image.cast()) }
        .to_str()
        .map_err(|_| CUDA_ERROR_INVALID_IMAGE)
}

/// `cuModuleLoadData`: loads a PTX image.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleLoadData(pmod: *mut Handle, image: *const c_void) -> CUresult {
    api(|| {
        state::with(|st| st.current())?;
        load_module(pmod, image_text(image)?)
    })
}

/// `cuModuleLoadDataEx`: as `cuModuleLoadData`; JIT options are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleLoadDataEx(
    pmod: *mut Handle,
    image: *const c_void,
    _num_options: c_uint,
    _options: *mut c_int,
    _option_values: *mut *mut c_void,
) -> CUresult {
    // SAFETY: same contract.
    unsafe { cuModuleLoadData(pmod, image) }
}

/// The PTX text of the module file `fname` (a cubin holds machine code
/// the stand-in cannot run).
pub(crate) fn ptx_file(fname: *const c_char) -> R<String> {
    let bytes = std::fs::read(cstr(fname)?).map_err(|_| CUDA_ERROR_FILE_NOT_FOUND)?;
    if bytes.starts_with(b"\x7fELF") {
        return Err(CUDA_ERROR_NO_BINARY_FOR_GPU);
    }
    let text = String::from_utf8(bytes).map_err(|_| CUDA_ERROR_INVALID_IMAGE)?;
    Ok(text.trim_end_matches('\0').to_owned())
}

/// `cuModuleLoad`: loads a PTX file.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleLoad(pmod: *mut Handle, fname: *const c_char) -> CUresult {
    api(|| {
        state::with(|st| st.current())?;
        load_module(pmod, &ptx_file(fname)?)
    })
}

/// `cuModuleUnload`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleUnload(hmod: Handle) -> CUresult {
    api(|| {
        state::with(|st| {
            let id = st.module(hmod)?;
            st.unload(id);
            Ok(())
        })
    })
}

/// `cuModuleGetFunction`: a kernel (`.entry`) of the module by name.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleGetFunction(
    hfunc: *mut Handle,
    hmod: Handle,
    name: *const c_char,
) -> CUresult {
    api(|| {
        let id = state::with(|st| {
            let m = st.module(hmod)?;
            let name = cstr(name)?;
            let entry = st.modules[&m]
                .entries
                .iter()
                .position(|e| e.name == name)
                .ok_or(CUDA_ERROR_NOT_FOUND)?;
            // One handle per (module, kernel), as the driver does.
            if let Some((id, _)) = st
                .funcs
                .iter()
                .find(|(_, f)| f.module == m && f.entry == entry)
            {
                return Ok(*id);
            }
            let id = st.id();
            let cname = std::ffi::CString::new(name).map_err(|_| CUDA_ERROR_INVALID_VALUE)?;
            st.funcs.insert(
                id,
                Func {
                    module: m,
                    entry,
                    name: cname,
                },
            );
            Ok(id)
        })?;
        put!(hfunc, handle(Kind::Func, id));
        Ok(())
    })
}

/// `cuModuleGetGlobal_v2`: module-scope variables are beyond the PTX
/// interpreter (a module declaring one does not load), so never found.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleGetGlobal_v2(
    _dptr: *mut CUdeviceptr,
    _bytes: *mut usize,
    hmod: Handle,
    name: *const c_char,
) -> CUresult {
    api(|| {
        state::with(|st| st.module(hmod))?;
        cstr(name)?;
        Err(CUDA_ERROR_NOT_FOUND)
    })
}

/// `cuFuncGetParamInfo`: offset and size of a kernel parameter, from the
/// PTX `.entry` signature.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuFuncGetParamInfo(
    func: Handle,
    index: usize,
    offset: *mut usize,
    size: *mut usize,
) -> CUresult {
    api(|| {
        let p = state::with(|st| {
            let f = &st.funcs[&st.func(func)?];
            let e = &st.modules[&f.module].entries[f.entry];
            e.params.get(index).copied().ok_or(CUDA_ERROR_INVALID_VALUE)
        })?;
        put!(offset, p.offset);
        put!(size, p.size);
        Ok(())
    })
}

/// `cuFuncGetAttribute`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuFuncGetAttribute(
    pi: *mut c_int,
    attrib: c_int,
    func: Handle,
) -> CUresult {
    api(|| {
        let v = state::with(|st| {
            let f = &st.funcs[&st.func(func)?];
            let m = &st.modules[&f.module];
            let e = &m.entries[f.entry];
            Ok(match attrib {
                0 => 1024,                         // MAX_THREADS_PER_BLOCK
                1..=3 => 0,                        // SHARED, CONST, LOCAL sizes
                4 => e.num_regs.min(255) as c_int, // NUM_REGS
                5 => m.ptx_version,                // PTX_VERSION
                6 => 80,                           // BINARY_VERSION
                7 => 0,                            // CACHE_MODE_CA
                8 => 49152,                        // MAX_DYNAMIC_SHARED_SIZE_BYTES
                9 => -1,                           // PREFERRED_SHARED_MEMORY_CARVEOUT
                10..=15 => 0,                      // cluster attributes
                _ => return Err(CUDA_ERROR_INVALID_VALUE),
            })
        })?;
        put!(pi, v);
        Ok(())
    })
}

/// `cuFuncSetAttribute`: accepted within the device's limits, no effect.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuFuncSetAttribute(func: Handle, attrib: c_int, value: c_int) -> CUresult {
    api(|| {
        state::with(|st| st.func(func))?;
        match attrib {
            8 if !(0..=49152).contains(&value) => Err(CUDA_ERROR_INVALID_VALUE),
            8..=15 => Ok(()),
            _ => Err(CUDA_ERROR_INVALID_VALUE),
        }
    })
}

/// `cuFuncSetCacheConfig`: no effect.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuFuncSetCacheConfig(func: Handle, _config: c_uint) -> CUresult {
    api(|| state::with(|st| st.func(func).map(drop)))
}

/// `cuFuncGetName`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuFuncGetName(name: *mut *const c_char, func: Handle) -> CUresult {
    api(|| {
        // The CString lives as long as the function handle.
        let p = state::with(|st| Ok(st.funcs[&st.func(func)?].name.as_ptr()))?;
        put!(name, p);
        Ok(())
    })
}

/// `cuFuncGetModule`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuFuncGetModule(hmod: *mut Handle, func: Handle) -> CUresult {
    api(|| {
        let m = state::with(|st| Ok(st.funcs[&st.func(func)?].module))?;
        put!(hmod, handle(Kind::Module, m));
        Ok(())
    })
}

// ---------------------------------------------------------------- launch

/// `cuLaunchKernel`: runs the kernel now, in stream order. `kernelParams`
/// holds one pointer per PTX parameter; `extra` is not supported. A kernel
/// fault is returned at the next call in the context (it is sticky).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchKernel(
    func: Handle,
    grid_x: c_uint,
    grid_y: c_uint,
    grid_z: c_uint,
    block_x: c_uint,
    block_y: c_uint,
    block_z: c_uint,
    shared_mem_bytes: c_uint,
    stream: Handle,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    api(|| {
        state::with(|st| {
            let fid = st.func(func)?;
            st.stream_ctx(stream)?;
            if !extra.is_null() {
                return Err(CUDA_ERROR_NOT_SUPPORTED);
            }
            let dims = [grid_x, grid_y, grid_z, block_x, block_y, block_z];
            if dims.contains(&0)
                || grid_x > i32::MAX as u32
                || grid_y > 65535
                || grid_z > 65535
                || block_x > 1024
                || block_y > 1024
                || block_z > 64
                || block_x as u64 * block_y as u64 * block_z as u64 > 1024
                || shared_mem_bytes > 49152
            {
                return Err(CUDA_ERROR_INVALID_VALUE);
            }
            if grid_z != 1 || block_z != 1 {
                // The interpreter launches 1D and 2D grids and blocks only.
                return Err(CUDA_ERROR_NOT_SUPPORTED);
            }
            let f = &st.funcs[&fid];
            let params = st.modules[&f.module].entries[f.entry].params.clone();
            if !params.is_empty() && kernel_params.is_null() {
                return Err(CUDA_ERROR_INVALID_VALUE);
            }
            let mut args = Vec::with_capacity(params.len());
            for (i, p) in params.iter().enumerate() {
                // SAFETY: `kernelParams` holds one pointer per parameter (cuda.h).
                let arg = unsafe { *kernel_params.add(i) };
                // SAFETY: each points to the parameter's value, `p.size` bytes.
                args.push(unsafe { host(arg, p.size) }?.to_vec());
            }
            // The fault is sticky; the launch itself reports success, as an
            // asynchronous launch on a device would.
            let _ = st.run_kernel(
                fid,
                (grid_x, grid_y, grid_z),
                (block_x, block_y, block_z),
                &args,
            );
            Ok(())
        })
    })
}

/// `CUlaunchConfig` of cuda.h (its fields, in its order).
#[allow(missing_docs)]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LaunchConfig {
    pub grid_dim_x: c_uint,
    pub grid_dim_y: c_uint,
    pub grid_dim_z: c_uint,
    pub block_dim_x: c_uint,
    pub block_dim_y: c_uint,
    pub block_dim_z: c_uint,
    pub shared_mem_bytes: c_uint,
    pub h_stream: Handle,
    pub attrs: *const LaunchAttribute,
    pub num_attrs: c_uint,
}

/// `CUlaunchAttribute` of cuda.h: an id and a 64-byte value.
#[allow(missing_docs)]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LaunchAttribute {
    pub id: c_uint,
    pub pad: [u8; 4],
    pub value: [u64; 8],
}

/// The launch attribute ids of CUDA 12.8 (`CU_LAUNCH_ATTRIBUTE_*`, 0 to 14).
const LAUNCH_ATTRIBUTE_MAX: c_uint = 14;
/// `CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_EVENT` and `_LAUNCH_COMPLETION_EVENT`.
const EVENT_ATTRIBUTES: [c_uint; 2] = [7, 12];

/// `cuLaunchKernelEx`: `cuLaunchKernel` with the configuration; attributes
/// are checked (known ids, live events) and have no other effect here.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchKernelEx(
    config: *const LaunchConfig,
    func: Handle,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    let c = match api_value(|| {
        if config.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        // SAFETY: non-null; cuda.h's contract makes it a configuration.
        let c = unsafe { config.read_unaligned() };
        if c.num_attrs > 0 && c.attrs.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        for i in 0..c.num_attrs as usize {
            // SAFETY: `attrs` holds `num_attrs` attributes (cuda.h).
            let a = unsafe { c.attrs.add(i).read_unaligned() };
            if a.id > LAUNCH_ATTRIBUTE_MAX {
                return Err(CUDA_ERROR_INVALID_VALUE);
            }
            if EVENT_ATTRIBUTES.contains(&a.id) {
                state::with(|st| st.event(a.value[0] as usize as Handle).map(drop))?;
            }
        }
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => return e,
    };
    // SAFETY: the caller's arguments, under cuLaunchKernel's contract.
    unsafe {
        cuLaunchKernel(
            func,
            c.grid_dim_x,
            c.grid_dim_y,
            c.grid_dim_z,
            c.block_dim_x,
            c.block_dim_y,
            c.block_dim_z,
            c.shared_mem_bytes,
            c.h_stream,
            kernel_params,
            extra,
        )
    }
}

/// `cuOccupancyMaxActiveBlocksPerMultiprocessor`: by threads alone.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuOccupancyMaxActiveBlocksPerMultiprocessor(
    num_blocks: *mut c_int,
    func: Handle,
    block_size: c_int,
    _dynamic_smem: usize,
) -> CUresult {
    api(|| {
        state::with(|st| st.func(func))?;
        if !(1..=1024).contains(&block_size) {
            put!(num_blocks, 0);
            return Ok(());
        }
        put!(num_blocks, (2048 / block_size).min(32));
        Ok(())
    })
}

/// `cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
    num_blocks: *mut c_int,
    func: Handle,
    block_size: c_int,
    dynamic_smem: usize,
    _flags: c_uint,
) -> CUresult {
    // SAFETY: same contract.
    unsafe {
        cuOccupancyMaxActiveBlocksPerMultiprocessor(num_blocks, func, block_size, dynamic_smem)
    }
}

/// `cuOccupancyMaxPotentialBlockSize`: 1024 threads (or the limit).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuOccupancyMaxPotentialBlockSize(
    min_grid_size: *mut c_int,
    block_size: *mut c_int,
    func: Handle,
    _smem_fn: *const c_void,
    _dynamic_smem: usize,
    block_size_limit: c_int,
) -> CUresult {
    api(|| {
        state::with(|st| st.func(func))?;
        let bs = if block_size_limit > 0 {
            block_size_limit.min(1024)
        } else {
            1024
        };
        put!(
            min_grid_size,
            attribute(16).unwrap_or(1) * (2048 / bs).min(32)
        );
        put!(block_size, bs);
        Ok(())
    })
}

/// `cuOccupancyMaxPotentialBlockSizeWithFlags`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuOccupancyMaxPotentialBlockSizeWithFlags(
    min_grid_size: *mut c_int,
    block_size: *mut c_int,
    func: Handle,
    smem_fn: *const c_void,
    dynamic_smem: usize,
    block_size_limit: c_int,
    _flags: c_uint,
) -> CUresult {
    // SAFETY: same contract.
    unsafe {
        cuOccupancyMaxPotentialBlockSize(
            min_grid_size,
            block_size,
            func,
            smem_fn,
            dynamic_smem,
            block_size_limit,
        )
    }
}

// ---------------------------------------------------------------- device memory

/// `cuMemAlloc_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, size: usize) -> CUresult {
    api(|| {
        if dptr.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let p = state::with(|st| {
            let ctx = st.current()?;
            st.mem_alloc(ctx, size)
        })?;
        put!(dptr, p);
        Ok(())
    })
}

/// `cuMemAllocPitch_v2`: rows padded to the allocation granularity; the
/// element size must be 4, 8 or 16 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocPitch_v2(
    dptr: *mut CUdeviceptr,
    pitch: *mut usize,
    width: usize,
    height: usize,
    element_size: c_uint,
) -> CUresult {
    api(|| {
        if dptr.is_null() || pitch.is_null() || width == 0 || height == 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        if !matches!(element_size, 4 | 8 | 16) {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let row = width
            .checked_next_multiple_of(state::ALIGN as usize)
            .ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let size = row.checked_mul(height).ok_or(CUDA_ERROR_OUT_OF_MEMORY)?;
        let p = state::with(|st| {
            let ctx = st.current()?;
            st.mem_alloc(ctx, size)
        })?;
        put!(dptr, p);
        put!(pitch, row);
        Ok(())
    })
}

/// `cuMemFree_v2`: a pointer that is not the start of a live allocation is
/// `CUDA_ERROR_INVALID_VALUE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFree_v2(dptr: CUdeviceptr) -> CUresult {
    api(|| {
        state::with(|st| {
            st.current()?;
            if dptr == 0 {
                return Ok(());
            }
            st.mem_free(dptr)
        })
    })
}

/// `cuMemAllocAsync`: allocates from the current pool at once (stream
/// order is trivially kept).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocAsync(
    dptr: *mut CUdeviceptr,
    size: usize,
    stream: Handle,
) -> CUresult {
    api(|| {
        if dptr.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let p = state::with(|st| st.pool_alloc(None, size, stream))?;
        put!(dptr, p);
        Ok(())
    })
}

/// `cuMemFreeAsync`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFreeAsync(dptr: CUdeviceptr, stream: Handle) -> CUresult {
    api(|| {
        state::with(|st| {
            st.stream_ctx(stream)?;
            st.mem_free(dptr)
        })
    })
}

/// `cuMemGetInfo_v2`: free and total device memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CUresult {
    api(|| {
        let used = state::with(|st| {
            st.current()?;
            Ok(st.used())
        })?;
        put!(free, (TOTAL_MEM - used) as usize);
        put!(total, TOTAL_MEM as usize);
        Ok(())
    })
}

/// `cuMemGetAddressRange_v2`: the allocation holding `dptr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemGetAddressRange_v2(
    base: *mut CUdeviceptr,
    size: *mut usize,
    dptr: CUdeviceptr,
) -> CUresult {
    api(|| {
        let (b, s) = state::with(|st| {
            st.current()?;
            st.alloc_at(dptr)
                .map(|(s, a)| (s, a.size as usize))
                .ok_or(CUDA_ERROR_NOT_FOUND)
        })?;
        if !base.is_null() {
            put!(base, b);
        }
        if !size.is_null() {
            put!(size, s);
        }
        Ok(())
    })
}

fn htod(dst: CUdeviceptr, src: *const c_void, n: usize, stream: Handle) -> R<()> {
    state::with(|st| {
        st.stream_ctx(stream)?;
        let off = st.range(dst, n)?;
        // SAFETY: `src` holds `n` readable bytes (cuda.h).
        let bytes = unsafe { host(src, n) }?;
        st.mem[off..off + n].copy_from_slice(bytes);
        Ok(())
    })
}

fn dtoh(dst: *mut c_void, src: CUdeviceptr, n: usize, stream: Handle) -> R<()> {
    state::with(|st| {
        st.stream_ctx(stream)?;
        let off = st.range(src, n)?;
        // SAFETY: `dst` holds `n` writable bytes (cuda.h).
        let out = unsafe { host_mut(dst, n) }?;
        out.copy_from_slice(&st.mem[off..off + n]);
        Ok(())
    })
}

fn dtod(dst: CUdeviceptr, src: CUdeviceptr, n: usize, stream: Handle) -> R<()> {
    state::with(|st| {
        st.stream_ctx(stream)?;
        let d = st.range(dst, n)?;
        let s = st.range(src, n)?;
        st.mem.copy_within(s..s + n, d);
        Ok(())
    })
}

/// `cuMemcpyHtoD_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyHtoD_v2(
    dst: CUdeviceptr,
    src: *const c_void,
    n: usize,
) -> CUresult {
    api(|| htod(dst, src, n, std::ptr::null_mut()))
}

/// `cuMemcpyDtoH_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, n: usize) -> CUresult {
    api(|| dtoh(dst, src, n, std::ptr::null_mut()))
}

/// `cuMemcpyDtoD_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoD_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize) -> CUresult {
    api(|| dtod(dst, src, n, std::ptr::null_mut()))
}

/// `cuMemcpyHtoDAsync_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(
    dst: CUdeviceptr,
    src: *const c_void,
    n: usize,
    stream: Handle,
) -> CUresult {
    api(|| htod(dst, src, n, stream))
}

/// `cuMemcpyDtoHAsync_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(
    dst: *mut c_void,
    src: CUdeviceptr,
    n: usize,
    stream: Handle,
) -> CUresult {
    api(|| dtoh(dst, src, n, stream))
}

/// `cuMemcpyDtoDAsync_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoDAsync_v2(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    n: usize,
    stream: Handle,
) -> CUresult {
    api(|| dtod(dst, src, n, stream))
}

fn memset(dst: CUdeviceptr, pattern: &[u8], count: usize, stream: Handle) -> R<()> {
    state::with(|st| {
        st.stream_ctx(stream)?;
        let n = count
            .checked_mul(pattern.len())
            .ok_or(CUDA_ERROR_INVALID_VALUE)?;
        if !dst.is_multiple_of(pattern.len() as u64) {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let off = st.range(dst, n)?;
        for chunk in st.mem[off..off + n].chunks_exact_mut(pattern.len()) {
            chunk.copy_from_slice(pattern);
        }
        Ok(())
    })
}

/// `cuMemsetD8_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD8_v2(dst: CUdeviceptr, value: u8, n: usize) -> CUresult {
    api(|| memset(dst, &[value], n, std::ptr::null_mut()))
}

/// `cuMemsetD16_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD16_v2(dst: CUdeviceptr, value: u16, n: usize) -> CUresult {
    api(|| memset(dst, &value.to_ne_bytes(), n, std::ptr::null_mut()))
}

/// `cuMemsetD32_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD32_v2(dst: CUdeviceptr, value: c_uint, n: usize) -> CUresult {
    api(|| memset(dst, &value.to_ne_bytes(), n, std::ptr::null_mut()))
}

/// `cuMemsetD8Async`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD8Async(
    dst: CUdeviceptr,
    value: u8,
    n: usize,
    stream: Handle,
) -> CUresult {
    api(|| memset(dst, &[value], n, stream))
}

/// `cuMemsetD16Async`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD16Async(
    dst: CUdeviceptr,
    value: u16,
    n: usize,
    stream: Handle,
) -> CUresult {
    api(|| memset(dst, &value.to_ne_bytes(), n, stream))
}

/// `cuMemsetD32Async`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD32Async(
    dst: CUdeviceptr,
    value: c_uint,
    n: usize,
    stream: Handle,
) -> CUresult {
    api(|| memset(dst, &value.to_ne_bytes(), n, stream))
}

// ---------------------------------------------------------------- host memory

/// `cuMemHostAlloc`: plain `malloc`ed host memory (nothing to pin).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostAlloc(
    pp: *mut *mut c_void,
    size: usize,
    _flags: c_uint,
) -> CUresult {
    api(|| {
        if pp.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let p = state::with(|st| {
            let ctx = st.current()?;
            if size == 0 {
                return Err(CUDA_ERROR_INVALID_VALUE);
            }
            // SAFETY: malloc of a non-zero size; checked for null below.
            let p = unsafe { libc::malloc(size) };
            if p.is_null() {
                return Err(CUDA_ERROR_OUT_OF_MEMORY);
            }
            st.host_allocs.insert(p as usize, (size, ctx));
            Ok(p)
        })?;
        put!(pp, p);
        Ok(())
    })
}

/// `cuMemAllocHost_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocHost_v2(pp: *mut *mut c_void, size: usize) -> CUresult {
    // SAFETY: same contract.
    unsafe { cuMemHostAlloc(pp, size, 0) }
}

/// `cuMemFreeHost`: only what `cuMemHostAlloc`/`cuMemAllocHost` returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFreeHost(p: *mut c_void) -> CUresult {
    api(|| {
        state::with(|st| {
            st.host_allocs
                .remove(&(p as usize))
                .ok_or(CUDA_ERROR_INVALID_VALUE)?;
            // SAFETY: `p` came from our malloc and is freed once (removed above).
            unsafe { libc::free(p) };
            Ok(())
        })
    })
}

/// `cuMemHostGetFlags`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostGetFlags(flags: *mut c_uint, p: *mut c_void) -> CUresult {
    api(|| {
        state::with(|st| {
            st.current()?;
            st.host_allocs
                .get(&(p as usize))
                .map(drop)
                .ok_or(CUDA_ERROR_INVALID_VALUE)
        })?;
        put!(flags, 0);
        Ok(())
    })
}

/// `cuMemHostGetDevicePointer_v2`: host memory is not mapped into device
/// memory; not supported.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostGetDevicePointer_v2(
    _dptr: *mut CUdeviceptr,
    _p: *mut c_void,
    _flags: c_uint,
) -> CUresult {
    api(|| {
        state::with(|st| st.current())?;
        Err(CUDA_ERROR_NOT_SUPPORTED)
    })
}

/// `cuMemHostRegister_v2`: records the range (nothing to pin).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostRegister_v2(
    p: *mut c_void,
    size: usize,
    flags: c_uint,
) -> CUresult {
    api(|| {
        state::with(|st| {
            let ctx = st.current()?;
            if p.is_null() || size == 0 {
                return Err(CUDA_ERROR_INVALID_VALUE);
            }
            let start = p as usize;
            let overlaps = st
                .host_registered
                .range(..start + size)
                .next_back()
                .is_some_and(|(s, (n, _, _))| s + n > start);
            if overlaps {
                return Err(CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
            }
            st.host_registered.insert(start, (size, ctx, flags));
            Ok(())
        })
    })
}

/// `cuMemHostUnregister`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostUnregister(p: *mut c_void) -> CUresult {
    api(|| {
        state::with(|st| {
            st.current()?;
            st.host_registered
                .remove(&(p as usize))
                .map(drop)
                .ok_or(CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED)
        })
    })
}

/// `cuPointerGetAttribute`: CONTEXT, MEMORY_TYPE, DEVICE_POINTER,
/// HOST_POINTER, BUFFER_ID, DEVICE_ORDINAL, RANGE_START_ADDR, RANGE_SIZE
/// of device allocations and of host memory the driver allocated or
/// registered.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuPointerGetAttribute(
    data: *mut c_void,
    attribute: c_int,
    ptr: CUdeviceptr,
) -> CUresult {
    enum V {
        H(Handle),
        U32(u32),
        I32(i32),
        U64(u64),
    }
    api(|| {
        let v = state::with(|st| {
            if let Some((start, a)) = st.alloc_at(ptr) {
                st.usable(a.ctx)?;
                return Ok(match attribute {
                    1 => V::H(handle(Kind::Ctx, a.ctx)),
                    2 => V::U32(2), // CU_MEMORYTYPE_DEVICE
                    3 => V::U64(ptr),
                    7 => V::U64(a.id),
                    9 => V::I32(0),
                    11 => V::U64(start),
                    12 => V::U64(a.size),
                    _ => return Err(CUDA_ERROR_INVALID_VALUE),
                });
            }
            let p = ptr as usize;
            let found = st
                .host_allocs
                .range(..=p)
                .next_back()
                .filter(|(s, (n, _))| p < *s + *n)
                .map(|(s, (n, c))| (*s, (*n, *c)))
                .or_else(|| {
                    st.host_registered
                        .range(..=p)
                        .next_back()
                        .filter(|(s, (n, _, _))| p < *s + *n)
                        .map(|(s, (n, c, _))| (*s, (*n, *c)))
                });
            let (start, (size, ctx)) = found.ok_or(CUDA_ERROR_INVALID_VALUE)?;
            st.usable(ctx)?;
            Ok(match attribute {
                1 => V::H(handle(Kind::Ctx, ctx)),
                2 => V::U32(1), // CU_MEMORYTYPE_HOST
                4 => V::U64(ptr),
                9 => V::I32(0),
                11 => V::U64(start as u64),
                12 => V::U64(size as u64),
                _ => return Err(CUDA_ERROR_INVALID_VALUE),
            })
        })?;
        match v {
            V::H(h) => put!(data.cast::<Handle>(), h),
            V::U32(x) => put!(data.cast::<u32>(), x),
            V::I32(x) => put!(data.cast::<i32>(), x),
            V::U64(x) => put!(data.cast::<u64>(), x),
        }
        Ok(())
    })
}

/// `cuPointerGetAttributes`: each attribute as `cuPointerGetAttribute`
/// gives it; for an address that is no allocation, zeros and success.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuPointerGetAttributes(
    n: c_uint,
    attributes: *const c_int,
    data: *mut *mut c_void,
    ptr: CUdeviceptr,
) -> CUresult {
    if n == 0 || attributes.is_null() || data.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    for i in 0..n as usize {
        // SAFETY: `n` attributes and destinations (cuda.h).
        let (attribute, out) = unsafe { (*attributes.add(i), *data.add(i)) };
        if out.is_null() {
            return CUDA_ERROR_INVALID_VALUE;
        }
        // SAFETY: `out` has room for the attribute's value (cuda.h).
        match unsafe { cuPointerGetAttribute(out, attribute, ptr) } {
            CUDA_SUCCESS => {}
            CUDA_ERROR_INVALID_VALUE => {
                let size = if [1, 3, 4, 7, 11, 12, 17, 18, 19].contains(&attribute) {
                    8
                } else {
                    4
                };
                // SAFETY: as above.
                unsafe { std::ptr::write_bytes(out.cast::<u8>(), 0, size) };
            }
            rc => return rc,
        }
    }
    CUDA_SUCCESS
}

// ---------------------------------------------------------------- streams

/// `cuStreamCreate`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamCreate(ph: *mut Handle, flags: c_uint) -> CUresult {
    // SAFETY: same contract.
    unsafe { cuStreamCreateWithPriority(ph, flags, 0) }
}

/// `cuStreamCreateWithPriority`: priorities are clamped to [-5, 0].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamCreateWithPriority(
    ph: *mut Handle,
    flags: c_uint,
    priority: c_int,
) -> CUresult {
    api(|| {
        if ph.is_null() || flags > 1 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let id = state::with(|st| {
            let ctx = st.current()?;
            let id = st.id();
            st.streams.insert(
                id,
                Stream {
                    ctx,
                    flags,
                    priority: priority.clamp(-5, 0),
                },
            );
            Ok(id)
        })?;
        put!(ph, handle(Kind::Stream, id));
        Ok(())
    })
}

/// `cuStreamDestroy_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamDestroy_v2(h: Handle) -> CUresult {
    api(|| {
        state::with(|st| {
            let id = id_of(Kind::Stream, h).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
            let s = st.streams.get(&id).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
            st.ctx(s.ctx)?;
            st.streams.remove(&id);
            Ok(())
        })
    })
}

/// `cuStreamSynchronize`: its work is done; returns a sticky fault.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamSynchronize(h: Handle) -> CUresult {
    api(|| state::with(|st| st.stream_ctx(h).map(drop)))
}

/// `cuStreamQuery`: always complete.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamQuery(h: Handle) -> CUresult {
    api(|| state::with(|st| st.stream_ctx(h).map(drop)))
}

/// `cuStreamWaitEvent`: the event's work is already done.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamWaitEvent(h: Handle, event: Handle, _flags: c_uint) -> CUresult {
    api(|| {
        state::with(|st| {
            st.stream_ctx(h)?;
            st.event(event).map(drop)
        })
    })
}

fn stream_info(h: Handle) -> R<(u32, i32, u64)> {
    state::with(|st| {
        let ctx = st.stream_ctx(h)?;
        match id_of(Kind::Stream, h) {
            Some(id) => {
                let s = &st.streams[&id];
                Ok((s.flags, s.priority, s.ctx))
            }
            None => Ok((0, 0, ctx)),
        }
    })
}

/// `cuStreamGetPriority`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamGetPriority(h: Handle, priority: *mut c_int) -> CUresult {
    api(|| {
        let (_, p, _) = stream_info(h)?;
        put!(priority, p);
        Ok(())
    })
}

/// `cuStreamGetFlags`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamGetFlags(h: Handle, flags: *mut c_uint) -> CUresult {
    api(|| {
        let (f, _, _) = stream_info(h)?;
        put!(flags, f);
        Ok(())
    })
}

/// `cuStreamGetCtx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamGetCtx(h: Handle, pctx: *mut Handle) -> CUresult {
    api(|| {
        let (_, _, c) = stream_info(h)?;
        put!(pctx, handle(Kind::Ctx, c));
        Ok(())
    })
}

/// `cuStreamIsCapturing`: never capturing (graphs are not supported).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamIsCapturing(h: Handle, status: *mut c_int) -> CUresult {
    api(|| {
        stream_info(h)?;
        put!(status, 0);
        Ok(())
    })
}

/// `cuStreamAddCallback`: calls `callback(stream, status, userData)` now,
/// on the calling thread, without holding the driver's lock.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamAddCallback(
    h: Handle,
    callback: Option<unsafe extern "C" fn(Handle, CUresult, *mut c_void)>,
    user_data: *mut c_void,
    flags: c_uint,
) -> CUresult {
    api(|| {
        let cb = callback.ok_or(CUDA_ERROR_INVALID_VALUE)?;
        if flags != 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        stream_info(h)?;
        // SAFETY: the caller's callback, called as cuda.h documents.
        unsafe { cb(h, CUDA_SUCCESS, user_data) };
        Ok(())
    })
}

/// `cuLaunchHostFunc`: calls `fn(userData)` now, on the calling thread,
/// without holding the driver's lock.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchHostFunc(
    h: Handle,
    func: Option<unsafe extern "C" fn(*mut c_void)>,
    user_data: *mut c_void,
) -> CUresult {
    api(|| {
        let f = func.ok_or(CUDA_ERROR_INVALID_VALUE)?;
        stream_info(h)?;
        // SAFETY: the caller's host function, called as cuda.h documents.
        unsafe { f(user_data) };
        Ok(())
    })
}

// ---------------------------------------------------------------- events

/// `cuEventCreate`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventCreate(ph: *mut Handle, flags: c_uint) -> CUresult {
    api(|| {
        if ph.is_null() || flags & !0xF != 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let id = state::with(|st| {
            let ctx = st.current()?;
            let id = st.id();
            st.events.insert(
                id,
                Event {
                    ctx,
                    flags,
                    recorded: None,
                },
            );
            Ok(id)
        })?;
        put!(ph, handle(Kind::Event, id));
        Ok(())
    })
}

/// `cuEventRecord`: completes at once, timestamped now.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventRecord(event: Handle, stream: Handle) -> CUresult {
    api(|| {
        state::with(|st| {
            let id = st.event(event)?;
            st.stream_ctx(stream)?;
            if let Some(e) = st.events.get_mut(&id) {
                e.recorded = Some(Instant::now());
            }
            Ok(())
        })
    })
}

/// `cuEventRecordWithFlags`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventRecordWithFlags(
    event: Handle,
    stream: Handle,
    _flags: c_uint,
) -> CUresult {
    // SAFETY: same contract.
    unsafe { cuEventRecord(event, stream) }
}

/// `cuEventQuery`: recorded work is always complete.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventQuery(event: Handle) -> CUresult {
    api(|| state::with(|st| st.event(event).map(drop)))
}

/// `cuEventSynchronize`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventSynchronize(event: Handle) -> CUresult {
    api(|| state::with(|st| st.event(event).map(drop)))
}

/// `cuEventElapsedTime`: milliseconds between two recorded, timing events.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventElapsedTime(ms: *mut f32, start: Handle, end: Handle) -> CUresult {
    api(|| {
        let v = state::with(|st| {
            let (s, e) = (st.event(start)?, st.event(end)?);
            let (s, e) = (&st.events[&s], &st.events[&e]);
            const DISABLE_TIMING: u32 = 2;
            if s.flags & DISABLE_TIMING != 0 || e.flags & DISABLE_TIMING != 0 {
                return Err(CUDA_ERROR_INVALID_HANDLE);
            }
            match (s.recorded, e.recorded) {
                (Some(a), Some(b)) => Ok(if b >= a {
                    (b - a).as_secs_f32() * 1000.0
                } else {
                    -((a - b).as_secs_f32() * 1000.0)
                }),
                _ => Err(CUDA_ERROR_INVALID_HANDLE),
            }
        })?;
        put!(ms, v);
        Ok(())
    })
}

/// `cuEventElapsedTime_v2` (CUDA 12.8).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventElapsedTime_v2(
    ms: *mut f32,
    start: Handle,
    end: Handle,
) -> CUresult {
    // SAFETY: same contract.
    unsafe { cuEventElapsedTime(ms, start, end) }
}

/// `cuEventDestroy_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventDestroy_v2(event: Handle) -> CUresult {
    api(|| {
        state::with(|st| {
            let id = id_of(Kind::Event, event).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
            let e = st.events.get(&id).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
            st.ctx(e.ctx)?;
            st.events.remove(&id);
            Ok(())
        })
    })
}
