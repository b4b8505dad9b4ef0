//! What the guest library answers itself, or prepares before a remote call
//! (`fast_path(NAME)` in `specs/cuda.lapis`): the driver's error texts
//! (fetched once each), entry points by name (the host driver chooses the
//! version, the guest library answers with its own function of that name),
//! module images (their length, which the API does not pass), kernel
//! parameters (their sizes, learnt at a function's first launch) and launch
//! limits, page-locked host memory (the guest's own), and pointer
//! attributes of that memory.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_void};
use std::sync::{Mutex, OnceLock};

pub use crate::copies::{
    memcpy_2d, memcpy_2d_async, memcpy_3d, memcpy_3d_async, memcpy_unified, memcpy_unified_async,
};
use crate::cuda::{
    self, CUdeviceptr, CUfunction, CUmodule, CUpointer_attribute, CUresult, CUstream,
};
use crate::host_memory;
pub use crate::pools::{
    device_get_mem_pool, device_set_mem_pool, mem_alloc_async, mem_pool_destroy,
};

const CUDA_SUCCESS: CUresult = 0;
const CUDA_ERROR_INVALID_VALUE: CUresult = 1;
const CUDA_ERROR_INVALID_HANDLE: CUresult = 400;
const CUDA_ERROR_FILE_NOT_FOUND: CUresult = 301;
const CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND: i32 = 1;

// ------------------------------------------------------------------ error texts

/// The driver's texts, by (error, which), kept for the process's life as
/// the driver's static strings are.
static ERROR_TEXTS: Mutex<Option<HashMap<(CUresult, i32), &'static CStr>>> = Mutex::new(None);

/// `cuGetErrorName` (`which` 0) / `cuGetErrorString` (1): the host driver's
/// text, fetched once.
unsafe fn error_text(error: CUresult, which: i32, out: *mut *const c_char) -> CUresult {
    if out.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let cached = ERROR_TEXTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&(error, which)).copied());
    let text = match cached {
        Some(t) => t,
        None => {
            let mut buf = [0u8; 512];
            // SAFETY: `buf` holds the size passed.
            let rc =
                unsafe { cuda::avaErrorText(error, which, buf.len(), buf.as_mut_ptr().cast()) };
            if rc != CUDA_SUCCESS {
                // SAFETY: `out` is not NULL (checked above).
                unsafe { *out = std::ptr::null() };
                return rc;
            }
            let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len() - 1);
            let text: &'static CStr = Box::leak(
                CString::new(&buf[..end])
                    .unwrap_or_default()
                    .into_boxed_c_str(),
            );
            ERROR_TEXTS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(HashMap::new)
                .insert((error, which), text);
            text
        }
    };
    // SAFETY: `out` is not NULL (checked above).
    unsafe { *out = text.as_ptr() };
    CUDA_SUCCESS
}

/// `cuGetErrorName`.
///
/// # Safety
/// `p_str` is NULL or writable.
pub unsafe fn error_name(error: CUresult, p_str: *mut *const c_char) -> Option<CUresult> {
    // SAFETY: as the caller's.
    Some(unsafe { error_text(error, 0, p_str) })
}

/// `cuGetErrorString`.
///
/// # Safety
/// `p_str` is NULL or writable.
pub unsafe fn error_string(error: CUresult, p_str: *mut *const c_char) -> Option<CUresult> {
    // SAFETY: as the caller's.
    Some(unsafe { error_text(error, 1, p_str) })
}

// ------------------------------------------------------------------ entry points

/// This library's own handle, for looking up its exported functions.
fn own_library() -> *mut c_void {
    static HANDLE: OnceLock<usize> = OnceLock::new();
    *HANDLE.get_or_init(|| {
        // SAFETY: `info` is a local that dladdr fills; the address is one
        // of this library's functions.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        let f: unsafe extern "C" fn(u32) -> CUresult = cuda::cuInit;
        // SAFETY: as above.
        if unsafe { libc::dladdr(f as *const c_void, &mut info) } == 0 || info.dli_fname.is_null() {
            return 0;
        }
        // SAFETY: the file name dladdr gave is this (loaded) library's:
        // RTLD_NOLOAD only returns its handle.
        unsafe { libc::dlopen(info.dli_fname, libc::RTLD_LAZY | libc::RTLD_NOLOAD) as usize }
    }) as *mut c_void
}

/// Resolutions made, by (symbol, version, flags): the function (or NULL)
/// and the driver's symbol status.
type Resolved = HashMap<(CString, i32, u64), (usize, i32)>;
static RESOLVED: Mutex<Option<Resolved>> = Mutex::new(None);

/// The function `cuGetProcAddress_v2(symbol, version, flags)` returns: the
/// host driver names the entry point it would give (so versions follow the
/// driver's rules), and this library answers with its own function of that
/// name, or NULL (symbol not found) when it has none.
unsafe fn resolve(
    symbol: *const c_char,
    version: i32,
    flags: u64,
) -> Result<(usize, i32), CUresult> {
    if symbol.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: the application passes a NUL-terminated name.
    let key = (unsafe { CStr::from_ptr(symbol) }.to_owned(), version, flags);
    if let Some(r) = RESOLVED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&key).copied())
    {
        return Ok(r);
    }
    let mut name = [0u8; 256];
    let mut status = 0i32;
    // SAFETY: `name` holds the size passed; `status` is a local.
    let rc = unsafe {
        cuda::avaProcName(
            symbol,
            version,
            flags,
            name.len(),
            name.as_mut_ptr().cast(),
            &mut status,
        )
    };
    if rc != CUDA_SUCCESS {
        return Err(rc);
    }
    let lib = own_library();
    let f = if name[0] == 0 || lib.is_null() {
        0
    } else {
        // SAFETY: `name` is NUL-terminated (the worker writes the NUL);
        // `lib` is this library's handle.
        unsafe { libc::dlsym(lib, name.as_ptr().cast()) as usize }
    };
    if f == 0 && status == 0 {
        status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    }
    RESOLVED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, (f, status));
    Ok((f, status))
}

/// `cuGetProcAddress` (before CUDA 12.0's `_v2`): as `_v2` without the
/// status; an unknown name fails with `CUDA_ERROR_NOT_FOUND`.
///
/// # Safety
/// `symbol` is NULL or a string; `pfn` NULL or writable.
pub unsafe fn get_proc_address(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    version: i32,
    flags: u64,
) -> Option<CUresult> {
    if pfn.is_null() {
        return Some(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: as the caller's.
    Some(match unsafe { resolve(symbol, version, flags) } {
        Ok((f, _)) => {
            // SAFETY: `pfn` is not NULL.
            unsafe { *pfn = f as *mut c_void };
            if f == 0 {
                cuda::CUDA_ERROR_NOT_FOUND
            } else {
                CUDA_SUCCESS
            }
        }
        Err(rc) => rc,
    })
}

/// `cuGetProcAddress_v2`: an unknown name is `CUDA_SUCCESS` with a NULL
/// function and `CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND`.
///
/// # Safety
/// `symbol` is NULL or a string; `pfn` and `status` NULL or writable.
pub unsafe fn get_proc_address_v2(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    version: i32,
    flags: u64,
    status: *mut i32,
) -> Option<CUresult> {
    if pfn.is_null() {
        return Some(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: as the caller's.
    Some(match unsafe { resolve(symbol, version, flags) } {
        Ok((f, s)) => {
            // SAFETY: `pfn` is not NULL; `status` is checked.
            unsafe {
                *pfn = f as *mut c_void;
                if !status.is_null() {
                    *status = s;
                }
            }
            CUDA_SUCCESS
        }
        Err(rc) => rc,
    })
}

// ------------------------------------------------------------------ modules

/// The length of a module image: a binary one's (ELF cubin, fatbin) from
/// its header, a text one's (PTX) up to and including its NUL.
///
/// # Safety
/// `image` points to a module image as `cuModuleLoadData` takes it.
unsafe fn image_len(image: *const u8) -> usize {
    // SAFETY: every image is at least as long as the header read here
    // (an ELF header is 64 bytes; a fatbin header 16; a text image is read
    // only up to its NUL).
    unsafe {
        let magic = std::slice::from_raw_parts(image, 4);
        if magic == b"\x7fELF" {
            let h = std::slice::from_raw_parts(image, 64);
            let u16_at = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]) as usize;
            let u64_at =
                |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes")) as usize;
            let sh_end = u64_at(0x28).saturating_add(u16_at(0x3A).saturating_mul(u16_at(0x3C)));
            let ph_end = u64_at(0x20).saturating_add(u16_at(0x36).saturating_mul(u16_at(0x38)));
            return sh_end.max(ph_end).max(64);
        }
        if magic == 0xBA55_ED50u32.to_le_bytes() {
            let h = std::slice::from_raw_parts(image, 16);
            let header = u16::from_le_bytes([h[6], h[7]]) as usize;
            let payload = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes")) as usize;
            return header.saturating_add(payload);
        }
        CStr::from_ptr(image.cast()).to_bytes().len() + 1
    }
}

/// `cuModuleLoadData`: the image with its length.
///
/// # Safety
/// As `cuModuleLoadData`'s.
pub unsafe fn module_load_data(module: *mut CUmodule, image: *const c_void) -> Option<CUresult> {
    if module.is_null() || image.is_null() {
        return Some(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: the application passes a module image.
    let len = unsafe { image_len(image.cast()) };
    // SAFETY: `image` holds `len` bytes (above).
    Some(unsafe { cuda::avaModuleLoadData(module, image, len) })
}

/// `cuModuleLoadDataEx`: as `cuModuleLoadData`; the JIT options are not
/// applied, and log buffers they name are answered empty.
///
/// # Safety
/// As `cuModuleLoadDataEx`'s.
pub unsafe fn module_load_data_ex(
    module: *mut CUmodule,
    image: *const c_void,
    num_options: u32,
    options: *mut i32,
    values: *mut *mut c_void,
) -> Option<CUresult> {
    // SAFETY: as the caller's.
    if let Err(rc) = unsafe { empty_jit_logs(num_options, options, values) } {
        return Some(rc);
    }
    // SAFETY: as the caller's.
    unsafe { module_load_data(module, image) }
}

/// The bytes of the guest's module or library file, NUL-terminated when
/// it is text (PTX).
fn read_image(fname: *const c_char) -> Option<Vec<u8>> {
    if fname.is_null() {
        return None;
    }
    // SAFETY: the application passes a NUL-terminated path.
    let path = unsafe { CStr::from_ptr(fname) }
        .to_string_lossy()
        .into_owned();
    let mut bytes = std::fs::read(&path).ok()?;
    if !bytes.starts_with(b"\x7fELF") && !bytes.starts_with(&0xBA55_ED50u32.to_le_bytes()) {
        bytes.push(0);
    }
    Some(bytes)
}

/// Answers the JIT options' log buffers empty (the options are not
/// applied); `CUDA_ERROR_INVALID_VALUE` when they are missing.
///
/// # Safety
/// `options` and `values` hold `n` entries, as cuda.h's JIT options.
unsafe fn empty_jit_logs(
    n: u32,
    options: *mut i32,
    values: *mut *mut c_void,
) -> Result<(), CUresult> {
    const CU_JIT_INFO_LOG_BUFFER: i32 = 3;
    const CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES: i32 = 4;
    const CU_JIT_ERROR_LOG_BUFFER: i32 = 5;
    const CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES: i32 = 6;
    if n > 0 && (options.is_null() || values.is_null()) {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    for i in 0..n as usize {
        // SAFETY: the application passes `n` options and values.
        unsafe {
            match *options.add(i) {
                CU_JIT_INFO_LOG_BUFFER | CU_JIT_ERROR_LOG_BUFFER => {
                    let p = (*values.add(i)).cast::<u8>();
                    if !p.is_null() {
                        *p = 0;
                    }
                }
                CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES | CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES => {
                    *values.add(i) = std::ptr::null_mut();
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The checks of a library load: an output and a source (image or file
/// name), and JIT options whose log buffers are answered empty.
///
/// # Safety
/// As [`empty_jit_logs`].
unsafe fn library_prelude(
    library: *mut cuda::CUlibrary,
    source: *const c_void,
    num_jit: u32,
    jit_options: *mut i32,
    jit_values: *mut *mut c_void,
) -> Result<(), CUresult> {
    if library.is_null() || source.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: as the caller's.
    unsafe { empty_jit_logs(num_jit, jit_options, jit_values) }
}

/// `cuLibraryLoadData`: the image with its length; options are not
/// applied, and log buffers they name are answered empty.
///
/// # Safety
/// As `cuLibraryLoadData`'s.
#[allow(clippy::too_many_arguments)]
pub unsafe fn library_load_data(
    library: *mut cuda::CUlibrary,
    code: *const c_void,
    jit_options: *mut i32,
    jit_values: *mut *mut c_void,
    num_jit: u32,
    _lib_options: *mut i32,
    _lib_values: *mut *mut c_void,
    _num_lib: u32,
) -> Option<CUresult> {
    // SAFETY: as the caller's.
    if let Err(rc) = unsafe { library_prelude(library, code, num_jit, jit_options, jit_values) } {
        return Some(rc);
    }
    // SAFETY: the application passes a module image.
    let len = unsafe { image_len(code.cast()) };
    // SAFETY: `code` holds `len` bytes (above).
    Some(unsafe { cuda::avaLibraryLoadData(library, code, len) })
}

/// `cuLibraryLoadFromFile`: the file is the guest's; its contents are
/// loaded.
///
/// # Safety
/// As `cuLibraryLoadFromFile`'s.
#[allow(clippy::too_many_arguments)]
pub unsafe fn library_load_from_file(
    library: *mut cuda::CUlibrary,
    fname: *const c_char,
    jit_options: *mut i32,
    jit_values: *mut *mut c_void,
    num_jit: u32,
    _lib_options: *mut i32,
    _lib_values: *mut *mut c_void,
    _num_lib: u32,
) -> Option<CUresult> {
    // SAFETY: as the caller's.
    let checked =
        unsafe { library_prelude(library, fname.cast(), num_jit, jit_options, jit_values) };
    if let Err(rc) = checked {
        return Some(rc);
    }
    let Some(bytes) = read_image(fname) else {
        return Some(CUDA_ERROR_FILE_NOT_FOUND);
    };
    // SAFETY: `bytes` holds the image and its length is passed.
    Some(unsafe { cuda::avaLibraryLoadData(library, bytes.as_ptr().cast(), bytes.len()) })
}

/// `cuModuleLoad`: the file is the guest's; its contents are loaded.
///
/// # Safety
/// As `cuModuleLoad`'s.
pub unsafe fn module_load(module: *mut CUmodule, fname: *const c_char) -> Option<CUresult> {
    if module.is_null() || fname.is_null() {
        return Some(CUDA_ERROR_INVALID_VALUE);
    }
    let Some(bytes) = read_image(fname) else {
        return Some(CUDA_ERROR_FILE_NOT_FOUND);
    };
    // SAFETY: `bytes` holds the image and its length is passed.
    Some(unsafe { cuda::avaModuleLoadData(module, bytes.as_ptr().cast(), bytes.len()) })
}

// ------------------------------------------------------------------ launches

/// The device's launch limits: threads per block, block and grid sizes
/// (of device 0, asked once).
#[derive(Clone, Copy)]
struct Limits {
    threads: u64,
    block: [u64; 3],
    grid: [u64; 3],
}

fn limits() -> Option<Limits> {
    static LIMITS: OnceLock<Option<Limits>> = OnceLock::new();
    *LIMITS.get_or_init(|| {
        let attr = |a: i32| {
            let mut v = 0i32;
            // SAFETY: the output is a local.
            let rc = unsafe { cuda::cuDeviceGetAttribute(&mut v, a, 0) };
            (rc == CUDA_SUCCESS && v > 0).then_some(v as u64)
        };
        Some(Limits {
            threads: attr(1)?,
            block: [attr(2)?, attr(3)?, attr(4)?],
            grid: [attr(5)?, attr(6)?, attr(7)?],
        })
    })
}

/// The checks of a launch made before it is sent: learns the function's
/// parameters at its first launch (`metadata(f)`, which says how
/// `kernelParams` travels), and refuses at once, as the driver does, a
/// launch of no threads or beyond the device's block and grid limits.
fn check_launch(f: CUfunction, grid: [u32; 3], block: [u32; 3]) -> Option<CUresult> {
    if f.is_null() {
        return Some(CUDA_ERROR_INVALID_HANDLE);
    }
    let id = f as usize as u64;
    if remoting::guest::metadata(id, "fn_argc", 0).is_none() {
        let mut sizes = Vec::new();
        loop {
            let (mut offset, mut size) = (0usize, 0usize);
            // SAFETY: the outputs are locals.
            let rc = unsafe { cuda::cuFuncGetParamInfo(f, sizes.len(), &mut offset, &mut size) };
            if rc == CUDA_ERROR_INVALID_VALUE {
                break;
            }
            if rc != CUDA_SUCCESS {
                return Some(rc);
            }
            sizes.push(size as i64);
        }
        remoting::guest::set_metadata(id, "fn_argc", vec![sizes.len() as i64]);
        remoting::guest::set_metadata(id, "fn_arg_size", sizes);
    }
    let grid = grid.map(u64::from);
    let block = block.map(u64::from);
    if grid.contains(&0) || block.contains(&0) {
        return Some(CUDA_ERROR_INVALID_VALUE);
    }
    if let Some(l) = limits() {
        let threads = block.iter().product::<u64>();
        if threads > l.threads
            || block.iter().zip(l.block).any(|(&b, m)| b > m)
            || grid.iter().zip(l.grid).any(|(&g, m)| g > m)
        {
            return Some(CUDA_ERROR_INVALID_VALUE);
        }
    }
    None
}

/// `cuLaunchKernel`: [`check_launch`], then the generated call.
///
/// # Safety
/// As `cuLaunchKernel`'s.
#[allow(clippy::too_many_arguments)]
pub unsafe fn launch_kernel(
    f: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    _shared: u32,
    _stream: CUstream,
    _params: *mut *mut c_void,
    _extra: *mut *mut c_void,
) -> Option<CUresult> {
    check_launch(f, [gx, gy, gz], [bx, by, bz])
}

/// `cuLaunchKernelEx`: [`check_launch`] on the configuration's grid and
/// block, then `avaLaunchKernelEx` with its fields and attributes.
/// `extra` (the packed-parameter form) is not supported.
///
/// # Safety
/// As `cuLaunchKernelEx`'s.
pub unsafe fn launch_kernel_ex(
    config: *const cuda::CUlaunchConfig,
    f: CUfunction,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> Option<CUresult> {
    if config.is_null() {
        return Some(CUDA_ERROR_INVALID_VALUE);
    }
    if !extra.is_null() {
        return Some(cuda::CUDA_ERROR_NOT_SUPPORTED);
    }
    // SAFETY: non-NULL; the application passes a configuration.
    let c = unsafe { config.read_unaligned() };
    let (grid, block) = (
        [c.gridDimX, c.gridDimY, c.gridDimZ],
        [c.blockDimX, c.blockDimY, c.blockDimZ],
    );
    if let Some(rc) = check_launch(f, grid, block) {
        return Some(rc);
    }
    if c.numAttrs > 0 && c.attrs == 0 {
        return Some(CUDA_ERROR_INVALID_VALUE);
    }
    /// The launch attribute ids of CUDA 12.8 (`CU_LAUNCH_ATTRIBUTE_*`).
    const LAUNCH_ATTRIBUTE_MAX: u32 = 14;
    for i in 0..c.numAttrs as usize {
        // SAFETY: the attributes hold `numAttrs` entries of 72 bytes, each
        // starting with its id (cuda.h).
        let id = unsafe {
            (c.attrs as usize as *const u8)
                .add(i * 72)
                .cast::<u32>()
                .read_unaligned()
        };
        if id > LAUNCH_ATTRIBUTE_MAX {
            return Some(CUDA_ERROR_INVALID_VALUE);
        }
    }
    // SAFETY: the attributes hold `numAttrs` entries of 72 bytes (cuda.h);
    // the parameters are the application's, sized by the metadata.
    Some(unsafe {
        cuda::avaLaunchKernelEx(
            f,
            grid[0],
            grid[1],
            grid[2],
            block[0],
            block[1],
            block[2],
            c.sharedMemBytes,
            c.hStream as usize as CUstream,
            c.numAttrs,
            c.attrs as usize as *const u8,
            params,
        )
    })
}

// ------------------------------------------------------------------ page-locked host memory

/// `cuMemAllocHost_v2`.
///
/// # Safety
/// `pp` is NULL or writable.
pub unsafe fn mem_alloc_host(pp: *mut *mut c_void, size: usize) -> Option<CUresult> {
    // SAFETY: as the caller's.
    Some(unsafe { host_memory::alloc(pp, size) })
}

/// `cuMemHostAlloc` (the flags change nothing in the guest's memory).
///
/// # Safety
/// `pp` is NULL or writable.
pub unsafe fn mem_host_alloc(pp: *mut *mut c_void, size: usize, _flags: u32) -> Option<CUresult> {
    // SAFETY: as the caller's.
    Some(unsafe { host_memory::alloc(pp, size) })
}

/// `cuMemFreeHost`.
///
/// # Safety
/// `p` is what `cuMemAllocHost` returned, or anything (refused).
pub unsafe fn mem_free_host(p: *mut c_void) -> Option<CUresult> {
    // SAFETY: as the caller's.
    Some(unsafe { host_memory::free(p) })
}

/// `cuMemHostRegister_v2`.
///
/// # Safety
/// None: the range is only recorded.
pub unsafe fn mem_host_register(p: *mut c_void, size: usize, _flags: u32) -> Option<CUresult> {
    Some(host_memory::register(p as usize, size))
}

/// `cuMemHostUnregister`.
///
/// # Safety
/// None: the range is only forgotten.
pub unsafe fn mem_host_unregister(p: *mut c_void) -> Option<CUresult> {
    Some(host_memory::unregister(p as usize))
}

/// `cuPointerGetAttribute` of page-locked host memory, answered here; any
/// other pointer is the device's question.
///
/// # Safety
/// `data` is NULL or points to room for the attribute.
pub unsafe fn pointer_get_attribute(
    data: *mut c_void,
    attribute: CUpointer_attribute,
    ptr: CUdeviceptr,
) -> Option<CUresult> {
    let (base, size) = host_memory::range_of(ptr as usize)?;
    if data.is_null() {
        return Some(CUDA_ERROR_INVALID_VALUE);
    }
    const CU_MEMORYTYPE_HOST: u32 = 1;
    const CU_POINTER_ATTRIBUTE_IS_MANAGED: i32 = 8;
    // SAFETY: `data` has room for the attribute's value (the caller's).
    unsafe {
        match attribute {
            cuda::CU_POINTER_ATTRIBUTE_MEMORY_TYPE => *data.cast::<u32>() = CU_MEMORYTYPE_HOST,
            cuda::CU_POINTER_ATTRIBUTE_HOST_POINTER => *data.cast::<u64>() = ptr,
            cuda::CU_POINTER_ATTRIBUTE_RANGE_START_ADDR => *data.cast::<u64>() = base as u64,
            cuda::CU_POINTER_ATTRIBUTE_RANGE_SIZE => *data.cast::<u64>() = size as u64,
            CU_POINTER_ATTRIBUTE_IS_MANAGED => *data.cast::<u32>() = 0,
            _ => return Some(CUDA_ERROR_INVALID_VALUE),
        }
    }
    Some(CUDA_SUCCESS)
}

/// The size of an attribute's value in `cuPointerGetAttribute(s)`: the
/// handles, addresses, sizes and ids are 8 bytes, the rest 4.
fn pointer_attribute_size(attribute: CUpointer_attribute) -> usize {
    const EIGHT: [CUpointer_attribute; 9] = [1, 3, 4, 7, 11, 12, 17, 18, 19];
    if EIGHT.contains(&attribute) { 8 } else { 4 }
}

/// `cuPointerGetAttributes`: each attribute through
/// `cuPointerGetAttribute`; when `ptr` is not an address the driver knows
/// (`CUDA_ERROR_INVALID_VALUE`), the values are zeros and the call
/// succeeds, as the driver's does.
///
/// # Safety
/// `attributes` and `data` hold `n` entries; each `data[i]` has room for
/// its attribute's value.
pub unsafe fn pointer_get_attributes(
    n: u32,
    attributes: *mut CUpointer_attribute,
    data: *mut *mut c_void,
    ptr: CUdeviceptr,
) -> Option<CUresult> {
    if n == 0 || attributes.is_null() || data.is_null() {
        return Some(CUDA_ERROR_INVALID_VALUE);
    }
    for i in 0..n as usize {
        // SAFETY: the application passes `n` attributes and destinations.
        let (attribute, out) = unsafe { (*attributes.add(i), *data.add(i)) };
        if out.is_null() {
            return Some(CUDA_ERROR_INVALID_VALUE);
        }
        // SAFETY: `out` has room for the attribute's value (the caller's).
        let rc = unsafe { cuda::cuPointerGetAttribute(out, attribute, ptr) };
        match rc {
            CUDA_SUCCESS => {}
            CUDA_ERROR_INVALID_VALUE => {
                // SAFETY: as above.
                unsafe {
                    std::ptr::write_bytes(out.cast::<u8>(), 0, pointer_attribute_size(attribute))
                };
            }
            _ => return Some(rc),
        }
    }
    Some(CUDA_SUCCESS)
}

// ------------------------------------------------------------------ host functions

/// A host function of the application (`CUhostFn`).
type HostFn = unsafe extern "C" fn(*mut c_void);
/// A stream callback of the application (`CUstreamCallback`).
type StreamCallback = unsafe extern "C" fn(CUstream, CUresult, *mut c_void);

/// `cuLaunchHostFunc`: the stream's earlier work completes, then the
/// function runs here, in the application's process, before the call
/// returns (so that work enqueued after it follows it).
///
/// # Safety
/// As `cuLaunchHostFunc`'s: `host_fn` is NULL or a host function.
pub unsafe fn launch_host_func(
    stream: CUstream,
    host_fn: *mut c_void,
    user_data: *mut c_void,
) -> Option<CUresult> {
    if host_fn.is_null() {
        return Some(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: a stream handle of the application, passed on.
    let rc = unsafe { cuda::cuStreamSynchronize(stream) };
    if rc != CUDA_SUCCESS {
        return Some(rc);
    }
    // SAFETY: the application gave a `CUhostFn` (non-NULL, checked).
    let f: HostFn = unsafe { std::mem::transmute::<*mut c_void, HostFn>(host_fn) };
    // SAFETY: called as cuda.h documents, with the application's data.
    unsafe { f(user_data) };
    Some(CUDA_SUCCESS)
}

/// `cuStreamAddCallback`: as [`launch_host_func`]; the callback gets the
/// stream's status (the error of its earlier work, as the driver passes).
///
/// # Safety
/// As `cuStreamAddCallback`'s: `callback` is NULL or a stream callback.
pub unsafe fn stream_add_callback(
    stream: CUstream,
    callback: *mut c_void,
    user_data: *mut c_void,
    flags: u32,
) -> Option<CUresult> {
    if callback.is_null() || flags != 0 {
        return Some(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: a stream handle of the application, passed on.
    let status = unsafe { cuda::cuStreamSynchronize(stream) };
    if status == CUDA_ERROR_INVALID_HANDLE {
        return Some(status);
    }
    // SAFETY: the application gave a `CUstreamCallback` (non-NULL).
    let f: StreamCallback = unsafe { std::mem::transmute::<*mut c_void, StreamCallback>(callback) };
    // SAFETY: called as cuda.h documents, with the application's data.
    unsafe { f(stream, status, user_data) };
    Some(CUDA_SUCCESS)
}
