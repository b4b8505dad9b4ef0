//! Hand-written parts of the CUDA dispatcher (`specs/cuda.lapis`): the
//! worker's side of per-function metadata (a kernel's parameters, from the
//! driver), module loading with the image's length, the resolution of entry
//! points by name, and the shared primary context's reset.

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_void};
use std::sync::Mutex;

use remoting::worker::{CallCtx, DispatchError};

use crate::cuda::{
    Api, CUcontext, CUdevice, CUdeviceptr, CUmodule, CUresult, CUstream, cuuint64_t,
};
use crate::cuda_copies::span;

pub use crate::cuda_copies::{
    memcpy_box_dtod, memcpy_box_dtod_async, memcpy_box_dtoh, memcpy_box_htod, memcpy_box_htod_async,
};
pub use crate::cuda_memory::{
    launch_kernel, launch_kernel_ex, mem_alloc, mem_alloc_async, mem_alloc_from_pool_async,
    mem_alloc_pitch, mem_free, mem_free_async,
};

const CUDA_SUCCESS: CUresult = 0;
const CUDA_ERROR_INVALID_IMAGE: CUresult = 200;

/// Parameter sizes of each kernel seen, by host function handle. Cleared
/// when a module is unloaded (a later function may reuse the address).
static PARAMS: Mutex<Option<HashMap<u64, Vec<usize>>>> = Mutex::new(None);

/// The kernels of libraries the driver has handed out (`cuLibraryGetKernel`),
/// with their library: a kernel travels as a function handle, but the
/// driver answers its parameters through `cuKernelGetParamInfo`.
static KERNELS: Mutex<Option<HashMap<u64, u64>>> = Mutex::new(None);

fn is_kernel(func: u64) -> bool {
    KERNELS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(|k| k.contains_key(&func))
}

/// The driver's parameter query for `func`: `cuKernelGetParamInfo` for a
/// library's kernel, `cuFuncGetParamInfo` otherwise.
type ParamInfo =
    unsafe extern "C" fn(crate::cuda::CUfunction, usize, *mut usize, *mut usize) -> CUresult;
fn param_info(api: &Api, func: u64) -> Option<ParamInfo> {
    if is_kernel(func) {
        api.cuKernelGetParamInfo
    } else {
        api.cuFuncGetParamInfo
    }
}

/// Runs `f` on the sizes of `func`'s parameters, from the driver (asked
/// once, then cached); `None` without a driver.
fn with_param_sizes<T>(api: &Api, func: u64, f: impl FnOnce(&[usize]) -> T) -> Option<T> {
    let mut cache = PARAMS.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(v) = cache.get(&func) {
        return Some(f(v));
    }
    let info = param_info(api, func)?;
    let mut sizes = Vec::new();
    loop {
        let (mut offset, mut size) = (0usize, 0usize);
        // SAFETY: `func` is a live function handle of this guest (the
        // dispatcher translated it); the outputs are locals.
        let rc = unsafe { info(func as usize as _, sizes.len(), &mut offset, &mut size) };
        if rc != CUDA_SUCCESS || sizes.len() >= 4096 {
            break;
        }
        sizes.push(size);
    }
    let out = f(&sizes);
    cache.insert(func, sizes);
    Some(out)
}

/// `metadata(f)->fn_argc` and `metadata(f)->fn_arg_size[index]` on the
/// worker: what the driver says of the function (0 when unknown).
pub fn metadata(api: &Api, object: u64, field: &str, index: usize) -> i128 {
    with_param_sizes(api, object, |sizes| match field {
        "fn_argc" => sizes.len() as i128,
        "fn_arg_size" => sizes.get(index).map_or(0, |&s| s as i128),
        _ => 0,
    })
    .unwrap_or(0)
}

/// `avaModuleLoadData`: `cuModuleLoadData` on an image whose length the
/// guest sent. A text image (PTX) must end within it: the driver reads it
/// up to its NUL.
///
/// # Safety
/// `module` is NULL or points to a writable handle; `image` points to
/// `size` readable bytes.
pub unsafe fn module_load_data(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    module: *mut CUmodule,
    image: *const c_void,
    size: usize,
) -> Result<CUresult, DispatchError> {
    let f = api
        .cuModuleLoadData
        .ok_or(DispatchError::Unavailable("cuModuleLoadData"))?;
    // SAFETY: the dispatcher checked that `image` holds `size` bytes.
    if !unsafe { sent_image_is_bounded(image, size) } {
        return Ok(CUDA_ERROR_INVALID_IMAGE);
    }
    // SAFETY: the image is bounded within the bytes given.
    Ok(unsafe { f(module, image) })
}

/// Whether the `size` bytes a guest sent at `image` are a module image the
/// driver reads within them (see [`image_is_bounded`]); none is not.
///
/// # Safety
/// `image` is NULL or points to `size` readable bytes.
unsafe fn sent_image_is_bounded(image: *const c_void, size: usize) -> bool {
    if image.is_null() || size == 0 {
        return false;
    }
    // SAFETY: as the caller's.
    image_is_bounded(unsafe { std::slice::from_raw_parts(image.cast::<u8>(), size) })
}

/// Whether the driver, reading `bytes` as a module image, stays within
/// them: a binary image (ELF cubin, fatbin) is read by its headers' sizes,
/// which the guest library computed; a text image (PTX) must hold a NUL.
fn image_is_bounded(bytes: &[u8]) -> bool {
    const ELF: &[u8] = b"\x7fELF";
    const FATBIN: [u8; 4] = 0xBA55_ED50u32.to_le_bytes();
    if bytes.starts_with(ELF) || bytes.starts_with(&FATBIN) {
        return image_len(bytes).is_some_and(|n| n <= bytes.len());
    }
    bytes.contains(&0)
}

/// The length of a binary module image from its header (ELF64 cubin:
/// the end of its section and program header tables; fatbin: header size
/// plus payload), as the guest library computes it.
pub fn image_len(bytes: &[u8]) -> Option<usize> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
    if bytes.starts_with(b"\x7fELF") {
        let shoff = u64_at(0x28)? as usize;
        let shentsize = u16_at(0x3A)? as usize;
        let shnum = u16_at(0x3C)? as usize;
        let phoff = u64_at(0x20)? as usize;
        let phentsize = u16_at(0x36)? as usize;
        let phnum = u16_at(0x38)? as usize;
        let sh_end = shoff.checked_add(shentsize.checked_mul(shnum)?)?;
        let ph_end = phoff.checked_add(phentsize.checked_mul(phnum)?)?;
        return Some(sh_end.max(ph_end).max(0x40));
    }
    let header = u16_at(6)? as usize;
    let payload = u64_at(8)? as usize;
    header.checked_add(payload)
}

/// `cuFuncGetParamInfo`, of a function or of a library's kernel.
///
/// # Safety
/// The outputs are NULL or writable.
pub unsafe fn func_param_info(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    func: crate::cuda::CUfunction,
    index: usize,
    offset: *mut usize,
    size: *mut usize,
) -> Result<CUresult, DispatchError> {
    let f = param_info(api, func as usize as u64)
        .ok_or(DispatchError::Unavailable("cuFuncGetParamInfo"))?;
    // SAFETY: the caller's arguments.
    Ok(unsafe { f(func, index, offset, size) })
}

/// `avaLibraryLoadData`: `cuLibraryLoadData` on an image whose length the
/// guest sent (bounded as a module's), without options.
///
/// # Safety
/// `library` is NULL or writable; `image` points to `size` bytes.
pub unsafe fn library_load_data(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    library: *mut crate::cuda::CUlibrary,
    image: *const c_void,
    size: usize,
) -> Result<CUresult, DispatchError> {
    let f = api
        .cuLibraryLoadData
        .ok_or(DispatchError::Unavailable("cuLibraryLoadData"))?;
    // SAFETY: the dispatcher checked that `image` holds `size` bytes.
    if !unsafe { sent_image_is_bounded(image, size) } {
        return Ok(CUDA_ERROR_INVALID_IMAGE);
    }
    let (no_options, no_values) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: the image is bounded within the bytes given; no options.
    Ok(unsafe {
        f(
            library, image, no_options, no_values, 0, no_options, no_values, 0,
        )
    })
}

/// `cuLibraryGetKernel`, recording the kernel (see [`KERNELS`]).
///
/// # Safety
/// `kernel` is NULL or writable; `name` a string.
pub unsafe fn library_get_kernel(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    kernel: *mut crate::cuda::CUfunction,
    library: crate::cuda::CUlibrary,
    name: *const c_char,
) -> Result<CUresult, DispatchError> {
    let f = api
        .cuLibraryGetKernel
        .ok_or(DispatchError::Unavailable("cuLibraryGetKernel"))?;
    // SAFETY: the caller's arguments.
    let rc = unsafe { f(kernel, library, name) };
    if rc == CUDA_SUCCESS && !kernel.is_null() {
        // SAFETY: the driver wrote the kernel.
        let k = unsafe { *kernel } as usize as u64;
        KERNELS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(k, library as usize as u64);
    }
    Ok(rc)
}

/// `cuLibraryUnload`: its kernels are forgotten with the parameter cache
/// (their addresses may come back for others).
///
/// # Safety
/// None beyond the driver's.
pub unsafe fn library_unload(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    library: crate::cuda::CUlibrary,
) -> Result<CUresult, DispatchError> {
    let f = api
        .cuLibraryUnload
        .ok_or(DispatchError::Unavailable("cuLibraryUnload"))?;
    // SAFETY: a translated library handle.
    let rc = unsafe { f(library) };
    if rc == CUDA_SUCCESS {
        if let Some(k) = KERNELS.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            k.retain(|_, l| *l != library as usize as u64);
        }
        if let Some(c) = PARAMS.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            c.clear();
        }
    }
    Ok(rc)
}

/// After `cuModuleUnload`: the functions of the module are gone, and their
/// addresses may come back for others.
///
/// # Safety
/// None beyond the call's: it only clears a cache.
pub unsafe fn module_unloaded(
    _api: &Api,
    _cx: &mut CallCtx<'_>,
    result: CUresult,
) -> Result<CUresult, DispatchError> {
    if let Some(c) = PARAMS.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        c.clear();
    }
    Ok(result)
}

/// `avaProcName`: the name of the driver's exported function that
/// `cuGetProcAddress_v2(symbol, version, flags)` returns, found with
/// `dladdr`; an empty name when the driver has none (or returns a function
/// it does not export by name), with the driver's symbol status.
///
/// # Safety
/// `symbol` is a NUL-terminated string; `name` points to `size` writable
/// bytes; `symbol_status` to an `i32`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn proc_name(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    symbol: *const c_char,
    cuda_version: i32,
    flags: cuuint64_t,
    size: usize,
    name: *mut c_char,
    symbol_status: *mut i32,
) -> Result<CUresult, DispatchError> {
    let get = api
        .cuGetProcAddress_v2
        .ok_or(DispatchError::Unavailable("cuGetProcAddress_v2"))?;
    if size == 0 || name.is_null() {
        return Ok(crate::cuda::CUDA_ERROR_INVALID_VALUE);
    }
    let mut pfn: *mut c_void = std::ptr::null_mut();
    let mut status = 0i32;
    // SAFETY: `symbol` is a string the dispatcher checked; the outputs are
    // locals.
    let rc = unsafe { get(symbol, &mut pfn, cuda_version, flags, &mut status) };
    let mut found = String::new();
    if rc == CUDA_SUCCESS && !pfn.is_null() {
        // SAFETY: `info` is a local that dladdr fills; `pfn` is any address.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::dladdr(pfn, &mut info) } != 0
            && !info.dli_sname.is_null()
            && info.dli_saddr == pfn
        {
            // SAFETY: dladdr returned a NUL-terminated symbol name.
            found = unsafe { CStr::from_ptr(info.dli_sname) }
                .to_string_lossy()
                .into_owned();
        }
    }
    let n = found.len().min(size - 1);
    // SAFETY: `name` holds `size` bytes (checked by the dispatcher) and
    // `n < size`; `symbol_status` points to an `i32` of the reply.
    unsafe {
        std::ptr::copy_nonoverlapping(found.as_ptr(), name.cast::<u8>(), n);
        *name.add(n) = 0;
        *symbol_status = status;
    }
    Ok(if rc == CUDA_SUCCESS { CUDA_SUCCESS } else { rc })
}

/// `avaErrorText`: the driver's `cuGetErrorName` (`which` 0) or
/// `cuGetErrorString` (1) of `error`, copied into `text`.
///
/// # Safety
/// `text` points to `size` writable bytes.
pub unsafe fn error_text(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    error: CUresult,
    which: i32,
    size: usize,
    text: *mut c_char,
) -> Result<CUresult, DispatchError> {
    let f = match which {
        0 => api.cuGetErrorName,
        _ => api.cuGetErrorString,
    }
    .ok_or(DispatchError::Unavailable("cuGetErrorName"))?;
    if size == 0 || text.is_null() {
        return Ok(crate::cuda::CUDA_ERROR_INVALID_VALUE);
    }
    let mut s: *const c_char = std::ptr::null();
    // SAFETY: the output is a local.
    let rc = unsafe { f(error, &mut s) };
    if rc != CUDA_SUCCESS || s.is_null() {
        return Ok(if rc == CUDA_SUCCESS {
            crate::cuda::CUDA_ERROR_INVALID_VALUE
        } else {
            rc
        });
    }
    // SAFETY: the driver returned a NUL-terminated static string.
    let bytes = unsafe { CStr::from_ptr(s) }.to_bytes();
    let n = bytes.len().min(size - 1);
    // SAFETY: `text` holds `size` bytes and `n < size`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), text.cast::<u8>(), n);
        *text.add(n) = 0;
    }
    Ok(CUDA_SUCCESS)
}

/// `cuDevicePrimaryCtxReset_v2`: the primary context is every guest's of
/// this isolation group, so one guest's reset only waits for the device's
/// work and leaves the context (and the others' memory) in place.
///
/// # Safety
/// None beyond the driver's.
pub unsafe fn primary_ctx_reset(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    dev: CUdevice,
) -> Result<CUresult, DispatchError> {
    let (Some(retain), Some(release), Some(sync), Some(set)) = (
        api.cuDevicePrimaryCtxRetain,
        api.cuDevicePrimaryCtxRelease_v2,
        api.cuCtxSynchronize,
        api.cuCtxSetCurrent,
    ) else {
        return Err(DispatchError::Unavailable("cuDevicePrimaryCtxRetain"));
    };
    let mut ctx: *mut c_void = std::ptr::null_mut();
    // SAFETY: the output is a local.
    let rc = unsafe { retain(&mut ctx, dev) };
    if rc != CUDA_SUCCESS {
        return Ok(rc);
    }
    // SAFETY: `ctx` is the live primary context just retained; the
    // thread's current context is restored by the guest's next calls.
    let rc = unsafe {
        let rc = set(ctx);
        if rc == CUDA_SUCCESS { sync() } else { rc }
    };
    // SAFETY: releases the reference taken above.
    unsafe { release(dev) };
    Ok(rc)
}

/// The driver's `cuCtxDestroy_v2` and `cuDevicePrimaryCtxRetain`, called
/// by the wrappers below.
static CTX_DESTROY: std::sync::OnceLock<unsafe extern "C" fn(CUcontext) -> CUresult> =
    std::sync::OnceLock::new();
type RetainFn = unsafe extern "C" fn(*mut CUcontext, CUdevice) -> CUresult;
static PRIMARY_RETAIN: std::sync::OnceLock<RetainFn> = std::sync::OnceLock::new();
/// The primary contexts the driver has handed out (they stay primary
/// contexts at those addresses for the executor's life: the executor keeps
/// a reference to each).
static PRIMARIES: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Routes `cuCtxDestroy_v2` (a guest's, and the cleanup after a guest that
/// exits) through [`destroy_unless_primary`]: a device's primary context is
/// every guest's of this isolation group and is never destroyed for one.
/// Primary contexts are recognised as `cuDevicePrimaryCtxRetain` returns
/// them ([`retain_primary`]).
pub fn guard_primary_contexts(api: &mut Api) {
    let (Some(destroy), Some(retain)) = (api.cuCtxDestroy_v2, api.cuDevicePrimaryCtxRetain) else {
        return;
    };
    let _ = CTX_DESTROY.set(destroy);
    let _ = PRIMARY_RETAIN.set(retain);
    api.cuCtxDestroy_v2 = Some(destroy_unless_primary);
    api.cuDevicePrimaryCtxRetain = Some(retain_primary);
}

/// `cuDevicePrimaryCtxRetain` that records the context; the first time a
/// device's primary context is seen, the executor keeps one reference of
/// its own, so that the context (and its address) outlives every guest.
unsafe extern "C" fn retain_primary(pctx: *mut CUcontext, dev: CUdevice) -> CUresult {
    let Some(f) = PRIMARY_RETAIN.get() else {
        return crate::cuda::CUDA_ERROR_NOT_INITIALIZED;
    };
    // SAFETY: the driver's own function, with the caller's arguments.
    let rc = unsafe { f(pctx, dev) };
    if rc == CUDA_SUCCESS && !pctx.is_null() {
        // SAFETY: the driver wrote the context through `pctx`.
        let ctx = unsafe { *pctx } as u64;
        let mut p = PRIMARIES.lock().unwrap_or_else(|p| p.into_inner());
        if !p.contains(&ctx) {
            p.push(ctx);
            let mut mine: CUcontext = std::ptr::null_mut();
            // SAFETY: a local output; this reference is never released.
            unsafe { f(&mut mine, dev) };
        }
    }
    rc
}

/// `cuCtxDestroy_v2` that refuses a primary context with
/// `CUDA_ERROR_INVALID_CONTEXT` (its references are dropped with
/// `cuDevicePrimaryCtxRelease`).
unsafe extern "C" fn destroy_unless_primary(ctx: CUcontext) -> CUresult {
    if PRIMARIES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&(ctx as u64))
    {
        return crate::cuda::CUDA_ERROR_INVALID_CONTEXT;
    }
    match CTX_DESTROY.get() {
        // SAFETY: the driver's own function, with the caller's argument.
        Some(f) => unsafe { f(ctx) },
        None => crate::cuda::CUDA_ERROR_INVALID_CONTEXT,
    }
}

/// Guards of the copies and memsets: the device ranges they touch must not
/// reach another VM's allocations (`crate::cuda_memory::own_ranges`). Each
/// takes the function's own arguments; `$ranges` names the device ranges
/// (address, bytes) from them.
macro_rules! device_ranges {
    ($(#[$doc:meta] $name:ident($($arg:ident: $ty:ty),*) => [$(($p:expr, $n:expr)),*];)*) => {$(
        #[$doc]
        ///
        /// # Safety
        /// None beyond the dispatcher's: no pointer is read.
        #[allow(clippy::too_many_arguments, unused_variables)]
        pub unsafe fn $name(
            _api: &Api,
            cx: &CallCtx<'_>,
            $($arg: $ty),*
        ) -> Result<(), DispatchError> {
            crate::cuda_memory::own_ranges(cx, &[$(($p, $n as u64)),*])
        }
    )*};
}

device_ranges! {
    /// `cuMemcpyHtoD_v2`: the destination.
    copy_to_device(dst: CUdeviceptr, src: *const c_void, n: usize) => [(dst, n)];
    /// `cuMemcpyHtoDAsync_v2`: the destination.
    copy_to_device_async(dst: CUdeviceptr, src: *const c_void, n: usize, s: CUstream) => [(dst, n)];
    /// `cuMemcpyDtoH_v2`: the source.
    copy_from_device(dst: *mut c_void, src: CUdeviceptr, n: usize) => [(src, n)];
    /// `cuMemcpyDtoHAsync_v2`: the source.
    copy_from_device_async(dst: *mut c_void, src: CUdeviceptr, n: usize, s: CUstream) => [(src, n)];
    /// `cuMemcpyDtoD_v2`: both ranges.
    copy_on_device(dst: CUdeviceptr, src: CUdeviceptr, n: usize) => [(dst, n), (src, n)];
    /// `cuMemcpyDtoDAsync_v2`: both ranges.
    copy_on_device_async(dst: CUdeviceptr, src: CUdeviceptr, n: usize, s: CUstream) => [(dst, n), (src, n)];
    /// `cuMemsetD8_v2`: the destination.
    memset8(dst: CUdeviceptr, v: u8, n: usize) => [(dst, n)];
    /// `cuMemsetD16_v2`: the destination.
    memset16(dst: CUdeviceptr, v: u16, n: usize) => [(dst, n.saturating_mul(2))];
    /// `cuMemsetD32_v2`: the destination.
    memset32(dst: CUdeviceptr, v: u32, n: usize) => [(dst, n.saturating_mul(4))];
    /// `cuMemsetD8Async`: the destination.
    memset8_async(dst: CUdeviceptr, v: u8, n: usize, s: CUstream) => [(dst, n)];
    /// `cuMemsetD16Async`: the destination.
    memset16_async(dst: CUdeviceptr, v: u16, n: usize, s: CUstream) => [(dst, n.saturating_mul(2))];
    /// `cuMemsetD32Async`: the destination.
    memset32_async(dst: CUdeviceptr, v: u32, n: usize, s: CUstream) => [(dst, n.saturating_mul(4))];
    /// `avaMemcpy3DHtoD`: the destination box.
    box_to_device(dst: CUdeviceptr, p: usize, ht: usize, src: *const c_void, w: usize, h: usize, d: usize)
        => [(dst, span(p, ht, w, h, d))];
    /// `avaMemcpy3DHtoDAsync`: the destination box.
    box_to_device_async(dst: CUdeviceptr, p: usize, ht: usize, src: *const c_void, w: usize, h: usize, d: usize, s: CUstream)
        => [(dst, span(p, ht, w, h, d))];
    /// `avaMemcpy3DDtoH`: the source box.
    box_from_device(dst: *mut c_void, src: CUdeviceptr, p: usize, ht: usize, w: usize, h: usize, d: usize, s: CUstream, on: u32)
        => [(src, span(p, ht, w, h, d))];
    /// `avaMemcpy3DDtoD`: both boxes.
    box_on_device(dst: CUdeviceptr, dp: usize, dh: usize, src: CUdeviceptr, sp: usize, sh: usize, w: usize, h: usize, d: usize)
        => [(dst, span(dp, dh, w, h, d)), (src, span(sp, sh, w, h, d))];
    /// `avaMemcpy3DDtoDAsync`: both boxes.
    box_on_device_async(dst: CUdeviceptr, dp: usize, dh: usize, src: CUdeviceptr, sp: usize, sh: usize, w: usize, h: usize, d: usize, s: CUstream)
        => [(dst, span(dp, dh, w, h, d)), (src, span(sp, sh, w, h, d))];
    /// `cuMemGetAddressRange_v2`: the address asked about.
    address_range(base: *mut CUdeviceptr, size: *mut usize, dptr: CUdeviceptr) => [(dptr, 1)];
}

/// `cuMemPoolCreate`: the Windows-only pointer of the properties must be
/// NULL (it would be a guest address).
///
/// # Safety
/// `props` is NULL or points to the properties (checked by the
/// dispatcher).
pub unsafe fn pool_props(
    _api: &Api,
    _cx: &CallCtx<'_>,
    _pool: *mut crate::cuda::CUmemoryPool,
    props: *const crate::cuda::CUmemPoolProps,
) -> Result<(), DispatchError> {
    // SAFETY: as the caller's.
    if !props.is_null() && unsafe { (*props).win32SecurityAttributes } != 0 {
        return Err(DispatchError::Api(
            crate::cuda::CUDA_ERROR_INVALID_VALUE.into(),
        ));
    }
    Ok(())
}
