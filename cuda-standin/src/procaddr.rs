//! `cuGetProcAddress`: driver entry points by base name and CUDA version,
//! as the CUDA runtime and cuda-python resolve them.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_void};

use crate::CUresult;
use crate::api::*;
use crate::copies::*;
use crate::errors::*;
use crate::libraries::*;
use crate::pools::*;

/// `CU_GET_PROC_ADDRESS_SUCCESS`.
pub const SYMBOL_SUCCESS: c_int = 0;
/// `CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND`.
pub const SYMBOL_NOT_FOUND: c_int = 1;
/// `CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT`.
pub const VERSION_NOT_SUFFICIENT: c_int = 2;

macro_rules! table {
    ($(($base:expr, $name:ident, $version:expr),)*) => {
        /// `(base name, exported name, CUDA version that introduced this
        /// ABI, entry point)` of every exported function with the legacy
        /// default stream; `crate::per_thread::entries` lists the
        /// per-thread ones.
        pub fn entries() -> &'static [(&'static str, &'static str, i32, usize)] {
            static TABLE: std::sync::OnceLock<Vec<(&'static str, &'static str, i32, usize)>> =
                std::sync::OnceLock::new();
            TABLE.get_or_init(|| vec![
                $(($base, stringify!($name), $version, $name as *const () as usize),)*
                ("cuGetProcAddress", "cuGetProcAddress", 11030, cuGetProcAddress as *const () as usize),
                ("cuGetProcAddress", "cuGetProcAddress_v2", 12000, cuGetProcAddress_v2 as *const () as usize),
            ])
        }
    };
}

table! {
    ("cuInit", cuInit, 2000),
    ("cuDriverGetVersion", cuDriverGetVersion, 2020),
    ("cuGetErrorName", cuGetErrorName, 6000),
    ("cuGetErrorString", cuGetErrorString, 6000),
    ("cuGetExportTable", cuGetExportTable, 3000),
    ("cuProfilerStart", cuProfilerStart, 4000),
    ("cuProfilerStop", cuProfilerStop, 4000),
    ("cuDeviceGetCount", cuDeviceGetCount, 2000),
    ("cuDeviceGet", cuDeviceGet, 2000),
    ("cuDeviceGetName", cuDeviceGetName, 2000),
    ("cuDeviceGetAttribute", cuDeviceGetAttribute, 2000),
    ("cuDeviceGetUuid", cuDeviceGetUuid, 9020),
    ("cuDeviceGetUuid", cuDeviceGetUuid_v2, 11040),
    ("cuDeviceTotalMem", cuDeviceTotalMem_v2, 3020),
    ("cuDeviceComputeCapability", cuDeviceComputeCapability, 2000),
    ("cuDeviceGetPCIBusId", cuDeviceGetPCIBusId, 4010),
    ("cuDeviceCanAccessPeer", cuDeviceCanAccessPeer, 4000),
    ("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain, 7000),
    ("cuDevicePrimaryCtxRelease", cuDevicePrimaryCtxRelease_v2, 11000),
    ("cuDevicePrimaryCtxReset", cuDevicePrimaryCtxReset_v2, 11000),
    ("cuDevicePrimaryCtxGetState", cuDevicePrimaryCtxGetState, 7000),
    ("cuDevicePrimaryCtxSetFlags", cuDevicePrimaryCtxSetFlags_v2, 11000),
    ("cuCtxCreate", cuCtxCreate_v2, 3020),
    ("cuCtxCreate", cuCtxCreate_v3, 11040),
    ("cuCtxCreate", cuCtxCreate_v4, 12050),
    ("cuCtxDestroy", cuCtxDestroy_v2, 4000),
    ("cuCtxSetCurrent", cuCtxSetCurrent, 4000),
    ("cuCtxGetCurrent", cuCtxGetCurrent, 4000),
    ("cuCtxPushCurrent", cuCtxPushCurrent_v2, 4000),
    ("cuCtxPopCurrent", cuCtxPopCurrent_v2, 4000),
    ("cuCtxGetDevice", cuCtxGetDevice, 2000),
    ("cuCtxSynchronize", cuCtxSynchronize, 2000),
    ("cuCtxGetApiVersion", cuCtxGetApiVersion, 3020),
    ("cuCtxGetFlags", cuCtxGetFlags, 7000),
    ("cuCtxSetFlags", cuCtxSetFlags, 12010),
    ("cuCtxGetId", cuCtxGetId, 12000),
    ("cuCtxGetLimit", cuCtxGetLimit, 3010),
    ("cuCtxSetLimit", cuCtxSetLimit, 3010),
    ("cuCtxGetCacheConfig", cuCtxGetCacheConfig, 3020),
    ("cuCtxSetCacheConfig", cuCtxSetCacheConfig, 3020),
    ("cuCtxGetStreamPriorityRange", cuCtxGetStreamPriorityRange, 5050),
    ("cuModuleLoadData", cuModuleLoadData, 2000),
    ("cuModuleLoadDataEx", cuModuleLoadDataEx, 2010),
    ("cuModuleLoad", cuModuleLoad, 2000),
    ("cuModuleUnload", cuModuleUnload, 2000),
    ("cuModuleGetFunction", cuModuleGetFunction, 2000),
    ("cuModuleGetGlobal", cuModuleGetGlobal_v2, 3020),
    ("cuFuncGetParamInfo", cuFuncGetParamInfo, 12040),
    ("cuFuncGetAttribute", cuFuncGetAttribute, 2020),
    ("cuFuncSetAttribute", cuFuncSetAttribute, 9000),
    ("cuFuncSetCacheConfig", cuFuncSetCacheConfig, 3000),
    ("cuFuncGetName", cuFuncGetName, 12030),
    ("cuFuncGetModule", cuFuncGetModule, 11000),
    ("cuLaunchKernel", cuLaunchKernel, 4000),
    ("cuLaunchKernelEx", cuLaunchKernelEx, 11060),
    ("cuOccupancyMaxActiveBlocksPerMultiprocessor", cuOccupancyMaxActiveBlocksPerMultiprocessor, 6050),
    ("cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags", cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags, 7000),
    ("cuOccupancyMaxPotentialBlockSize", cuOccupancyMaxPotentialBlockSize, 6050),
    ("cuOccupancyMaxPotentialBlockSizeWithFlags", cuOccupancyMaxPotentialBlockSizeWithFlags, 7000),
    ("cuMemAlloc", cuMemAlloc_v2, 3020),
    ("cuMemAllocPitch", cuMemAllocPitch_v2, 3020),
    ("cuMemFree", cuMemFree_v2, 3020),
    ("cuMemAllocAsync", cuMemAllocAsync, 11020),
    ("cuMemFreeAsync", cuMemFreeAsync, 11020),
    ("cuMemAllocFromPoolAsync", cuMemAllocFromPoolAsync, 11020),
    ("cuDeviceGetDefaultMemPool", cuDeviceGetDefaultMemPool, 11020),
    ("cuDeviceGetMemPool", cuDeviceGetMemPool, 11020),
    ("cuDeviceSetMemPool", cuDeviceSetMemPool, 11020),
    ("cuMemPoolCreate", cuMemPoolCreate, 11020),
    ("cuMemPoolDestroy", cuMemPoolDestroy, 11020),
    ("cuMemPoolTrimTo", cuMemPoolTrimTo, 11020),
    ("cuMemPoolSetAttribute", cuMemPoolSetAttribute, 11020),
    ("cuMemPoolGetAttribute", cuMemPoolGetAttribute, 11020),
    ("cuMemGetInfo", cuMemGetInfo_v2, 3020),
    ("cuMemGetAddressRange", cuMemGetAddressRange_v2, 3020),
    ("cuMemcpyHtoD", cuMemcpyHtoD_v2, 3020),
    ("cuMemcpyDtoH", cuMemcpyDtoH_v2, 3020),
    ("cuMemcpyDtoD", cuMemcpyDtoD_v2, 3020),
    ("cuMemcpyHtoDAsync", cuMemcpyHtoDAsync_v2, 3020),
    ("cuMemcpyDtoHAsync", cuMemcpyDtoHAsync_v2, 3020),
    ("cuMemcpyDtoDAsync", cuMemcpyDtoDAsync_v2, 3020),
    ("cuMemsetD8", cuMemsetD8_v2, 3020),
    ("cuMemsetD16", cuMemsetD16_v2, 3020),
    ("cuMemsetD32", cuMemsetD32_v2, 3020),
    ("cuMemsetD8Async", cuMemsetD8Async, 3020),
    ("cuMemsetD16Async", cuMemsetD16Async, 3020),
    ("cuMemsetD32Async", cuMemsetD32Async, 3020),
    ("cuMemHostAlloc", cuMemHostAlloc, 2020),
    ("cuMemAllocHost", cuMemAllocHost_v2, 3020),
    ("cuMemFreeHost", cuMemFreeHost, 2000),
    ("cuMemHostGetFlags", cuMemHostGetFlags, 2030),
    ("cuMemHostGetDevicePointer", cuMemHostGetDevicePointer_v2, 3020),
    ("cuMemHostRegister", cuMemHostRegister_v2, 6050),
    ("cuMemHostUnregister", cuMemHostUnregister, 4000),
    ("cuPointerGetAttribute", cuPointerGetAttribute, 4000),
    ("cuPointerGetAttributes", cuPointerGetAttributes, 7000),
    ("cuStreamCreate", cuStreamCreate, 2000),
    ("cuStreamCreateWithPriority", cuStreamCreateWithPriority, 5050),
    ("cuStreamDestroy", cuStreamDestroy_v2, 4000),
    ("cuStreamSynchronize", cuStreamSynchronize, 2000),
    ("cuStreamQuery", cuStreamQuery, 2000),
    ("cuStreamWaitEvent", cuStreamWaitEvent, 3020),
    ("cuStreamGetPriority", cuStreamGetPriority, 5050),
    ("cuStreamGetFlags", cuStreamGetFlags, 5050),
    ("cuStreamGetCtx", cuStreamGetCtx, 9020),
    ("cuStreamIsCapturing", cuStreamIsCapturing, 10000),
    ("cuStreamAddCallback", cuStreamAddCallback, 5000),
    ("cuLaunchHostFunc", cuLaunchHostFunc, 10000),
    ("cuEventCreate", cuEventCreate, 2000),
    ("cuEventRecord", cuEventRecord, 2000),
    ("cuEventRecordWithFlags", cuEventRecordWithFlags, 11010),
    ("cuEventQuery", cuEventQuery, 2000),
    ("cuEventSynchronize", cuEventSynchronize, 2000),
    ("cuEventElapsedTime", cuEventElapsedTime, 2000),
    ("cuEventElapsedTime", cuEventElapsedTime_v2, 12080),
    ("cuEventDestroy", cuEventDestroy_v2, 4000),
    ("cuLibraryLoadData", cuLibraryLoadData, 12000),
    ("cuLibraryLoadFromFile", cuLibraryLoadFromFile, 12000),
    ("cuLibraryUnload", cuLibraryUnload, 12000),
    ("cuLibraryGetKernel", cuLibraryGetKernel, 12000),
    ("cuLibraryGetModule", cuLibraryGetModule, 12000),
    ("cuLibraryGetGlobal", cuLibraryGetGlobal, 12000),
    ("cuKernelGetFunction", cuKernelGetFunction, 12000),
    ("cuKernelGetParamInfo", cuKernelGetParamInfo, 12040),
    ("cuMemcpy", cuMemcpy, 4000),
    ("cuMemcpyAsync", cuMemcpyAsync, 4000),
    ("cuMemcpy2D", cuMemcpy2D_v2, 3020),
    ("cuMemcpy2DUnaligned", cuMemcpy2DUnaligned_v2, 3020),
    ("cuMemcpy2DAsync", cuMemcpy2DAsync_v2, 3020),
    ("cuMemcpy3D", cuMemcpy3D_v2, 3020),
    ("cuMemcpy3DAsync", cuMemcpy3DAsync_v2, 3020),
}

/// `CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM`.
pub const PER_THREAD_DEFAULT_STREAM: u64 = 1 << 1;

/// Resolves `symbol` for `version`: the newest ABI introduced at or before
/// it, its per-thread default stream form when `per_thread` asks and there
/// is one. `(entry point, symbol status)`.
pub fn resolve(symbol: &str, version: i32, per_thread: bool) -> (usize, c_int) {
    let pt = crate::per_thread::entries();
    let candidates = entries()
        .iter()
        .map(|e| (e, false))
        .chain(pt.iter().filter(|_| per_thread).map(|e| (e, true)))
        .filter(|(e, _)| e.0 == symbol);
    let mut any = false;
    let mut best: Option<((i32, bool), usize)> = None;
    for ((_, _, v, f), is_pt) in candidates {
        any = true;
        if *v <= version && best.is_none_or(|(bv, _)| (*v, is_pt) > bv) {
            best = Some(((*v, is_pt), *f));
        }
    }
    match (best, any) {
        (Some((_, f)), _) => (f, SYMBOL_SUCCESS),
        (None, true) => (0, VERSION_NOT_SUFFICIENT),
        (None, false) => (0, SYMBOL_NOT_FOUND),
    }
}

/// `cuGetProcAddress_v2`: an unknown symbol gives `CUDA_SUCCESS`, a NULL
/// `*pfn` and `CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND`. Works before `cuInit`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetProcAddress_v2(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    cuda_version: c_int,
    flags: u64,
    symbol_status: *mut c_int,
) -> CUresult {
    if symbol.is_null() || pfn.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    // SAFETY: non-null, NUL-terminated per cuda.h.
    let name = unsafe { std::ffi::CStr::from_ptr(symbol) }
        .to_str()
        .unwrap_or("");
    let (f, status) = resolve(name, cuda_version, flags & PER_THREAD_DEFAULT_STREAM != 0);
    // SAFETY: `pfn` is non-null and writable per cuda.h.
    unsafe { pfn.write(f as *mut c_void) };
    if !symbol_status.is_null() {
        // SAFETY: non-null and writable per cuda.h.
        unsafe { symbol_status.write(status) };
    }
    CUDA_SUCCESS
}

/// `cuGetProcAddress` (CUDA 11.3 ABI, no symbol status).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetProcAddress(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    cuda_version: c_int,
    flags: u64,
) -> CUresult {
    // SAFETY: same contract, no status.
    unsafe { cuGetProcAddress_v2(symbol, pfn, cuda_version, flags, std::ptr::null_mut()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_abi_at_or_before_the_version() {
        let f = |n: &str, v| resolve(n, v, false);
        assert_eq!(
            f("cuMemAlloc", 12080),
            (cuMemAlloc_v2 as *const () as usize, SYMBOL_SUCCESS)
        );
        assert_eq!(
            f("cuDeviceGetUuid", 9020).0,
            cuDeviceGetUuid as *const () as usize
        );
        assert_eq!(
            f("cuDeviceGetUuid", 11040).0,
            cuDeviceGetUuid_v2 as *const () as usize
        );
        assert_eq!(
            f("cuEventElapsedTime", 12000).0,
            cuEventElapsedTime as *const () as usize
        );
        assert_eq!(
            f("cuEventElapsedTime", 12080).0,
            cuEventElapsedTime_v2 as *const () as usize
        );
        assert_eq!(f("cuMemAlloc", 2000), (0, VERSION_NOT_SUFFICIENT));
        assert_eq!(f("cuNoSuchThing", 12080), (0, SYMBOL_NOT_FOUND));
        assert_eq!(f("cuMemAlloc_v2", 12080), (0, SYMBOL_NOT_FOUND));
    }

    #[test]
    fn the_per_thread_flag_gives_the_per_thread_forms_where_there_are_some() {
        let pt = |n: &str, v| resolve(n, v, true).0;
        assert_eq!(
            pt("cuLaunchKernel", 12080),
            crate::per_thread::cuLaunchKernel_ptsz as *const () as usize
        );
        assert_eq!(
            pt("cuMemcpyHtoD", 12080),
            crate::per_thread::cuMemcpyHtoD_v2_ptds as *const () as usize
        );
        assert_eq!(pt("cuMemAlloc", 12080), cuMemAlloc_v2 as *const () as usize);
        assert_eq!(
            pt("cuMemcpyHtoD", 6000),
            cuMemcpyHtoD_v2 as *const () as usize
        );
    }
}
