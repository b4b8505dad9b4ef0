//! The per-thread default stream ABI (`_ptsz` and `_ptds` names): what a
//! program built with `--default-stream per-thread` links, and what
//! `cuGetProcAddress` returns with `CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM`.
//! A `_ptsz` function takes the NULL stream as `CU_STREAM_PER_THREAD`; a
//! `_ptds` function is the synchronous call on the thread's default
//! stream. The stand-in runs stream work when it is enqueued, so both are
//! the plain functions with the stream named.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_int, c_uint, c_void};

use crate::api::*;
use crate::copies::*;
use crate::pools::*;
use crate::{CUdeviceptr, CUresult, Handle};

/// `CU_STREAM_PER_THREAD`.
const PER_THREAD: usize = 0x2;

/// The stream a `_ptsz` function means: NULL is the per-thread stream.
fn per_thread(stream: Handle) -> Handle {
    if stream.is_null() {
        PER_THREAD as Handle
    } else {
        stream
    }
}

/// `(base name, per-thread name, version)` of every per-thread function
/// exported, for `cuGetProcAddress`.
macro_rules! per_thread {
    ($(
        $kind:ident $name:ident = $base:ident($($arg:ident: $ty:ty),*) $(stream $s:ident)?, $version:expr;
    )*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: `", stringify!($base), "` on the thread's default stream.")]
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> CUresult {
                $(let $s = per_thread($s);)?
                // SAFETY: the caller's arguments, under the same contract.
                unsafe { $base($($arg),*) }
            }
        )*

        /// `(base name, exported name, CUDA version, entry point)` of the
        /// per-thread functions.
        pub fn entries() -> Vec<(&'static str, &'static str, i32, usize)> {
            vec![
            ("cuLaunchKernelEx", "cuLaunchKernelEx_ptsz", 11060, cuLaunchKernelEx_ptsz as *const () as usize),
            $((
                stringify!($base).trim_end_matches("_v2").trim_end_matches("_v3"),
                stringify!($name),
                $version,
                $name as *const () as usize,
            ),)*
            ]
        }
    };
}

per_thread! {
    ptds cuMemcpy_ptds = cuMemcpy(dst: CUdeviceptr, src: CUdeviceptr, n: usize), 7000;
    ptds cuMemcpyHtoD_v2_ptds = cuMemcpyHtoD_v2(dst: CUdeviceptr, src: *const c_void, n: usize), 7000;
    ptds cuMemcpyDtoH_v2_ptds = cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, n: usize), 7000;
    ptds cuMemcpyDtoD_v2_ptds = cuMemcpyDtoD_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize), 7000;
    ptds cuMemcpy2D_v2_ptds = cuMemcpy2D_v2(p: *const Memcpy2D), 7000;
    ptds cuMemcpy2DUnaligned_v2_ptds = cuMemcpy2DUnaligned_v2(p: *const Memcpy2D), 7000;
    ptds cuMemcpy3D_v2_ptds = cuMemcpy3D_v2(p: *const Memcpy3D), 7000;
    ptds cuMemsetD8_v2_ptds = cuMemsetD8_v2(dst: CUdeviceptr, v: u8, n: usize), 7000;
    ptds cuMemsetD16_v2_ptds = cuMemsetD16_v2(dst: CUdeviceptr, v: u16, n: usize), 7000;
    ptds cuMemsetD32_v2_ptds = cuMemsetD32_v2(dst: CUdeviceptr, v: c_uint, n: usize), 7000;
    ptsz cuMemcpyAsync_ptsz = cuMemcpyAsync(dst: CUdeviceptr, src: CUdeviceptr, n: usize, s: Handle) stream s, 7000;
    ptsz cuMemcpyHtoDAsync_v2_ptsz = cuMemcpyHtoDAsync_v2(dst: CUdeviceptr, src: *const c_void, n: usize, s: Handle) stream s, 7000;
    ptsz cuMemcpyDtoHAsync_v2_ptsz = cuMemcpyDtoHAsync_v2(dst: *mut c_void, src: CUdeviceptr, n: usize, s: Handle) stream s, 7000;
    ptsz cuMemcpyDtoDAsync_v2_ptsz = cuMemcpyDtoDAsync_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize, s: Handle) stream s, 7000;
    ptsz cuMemcpy2DAsync_v2_ptsz = cuMemcpy2DAsync_v2(p: *const Memcpy2D, s: Handle) stream s, 7000;
    ptsz cuMemcpy3DAsync_v2_ptsz = cuMemcpy3DAsync_v2(p: *const Memcpy3D, s: Handle) stream s, 7000;
    ptsz cuMemsetD8Async_ptsz = cuMemsetD8Async(dst: CUdeviceptr, v: u8, n: usize, s: Handle) stream s, 7000;
    ptsz cuMemsetD16Async_ptsz = cuMemsetD16Async(dst: CUdeviceptr, v: u16, n: usize, s: Handle) stream s, 7000;
    ptsz cuMemsetD32Async_ptsz = cuMemsetD32Async(dst: CUdeviceptr, v: c_uint, n: usize, s: Handle) stream s, 7000;
    ptsz cuMemAllocAsync_ptsz = cuMemAllocAsync(p: *mut CUdeviceptr, n: usize, s: Handle) stream s, 11020;
    ptsz cuMemAllocFromPoolAsync_ptsz = cuMemAllocFromPoolAsync(p: *mut CUdeviceptr, n: usize, pool: Handle, s: Handle) stream s, 11020;
    ptsz cuMemFreeAsync_ptsz = cuMemFreeAsync(p: CUdeviceptr, s: Handle) stream s, 11020;
    ptsz cuStreamGetPriority_ptsz = cuStreamGetPriority(s: Handle, p: *mut c_int) stream s, 7000;
    ptsz cuStreamGetFlags_ptsz = cuStreamGetFlags(s: Handle, f: *mut c_uint) stream s, 7000;
    ptsz cuStreamGetCtx_ptsz = cuStreamGetCtx(s: Handle, c: *mut Handle) stream s, 9020;
    ptsz cuStreamWaitEvent_ptsz = cuStreamWaitEvent(s: Handle, e: Handle, f: c_uint) stream s, 7000;
    ptsz cuStreamSynchronize_ptsz = cuStreamSynchronize(s: Handle) stream s, 7000;
    ptsz cuStreamQuery_ptsz = cuStreamQuery(s: Handle) stream s, 7000;
    ptsz cuStreamAddCallback_ptsz = cuStreamAddCallback(
        s: Handle, cb: Option<unsafe extern "C" fn(Handle, CUresult, *mut c_void)>, u: *mut c_void, f: c_uint
    ) stream s, 7000;
    ptsz cuLaunchHostFunc_ptsz = cuLaunchHostFunc(
        s: Handle, f: Option<unsafe extern "C" fn(*mut c_void)>, u: *mut c_void
    ) stream s, 10000;
    ptsz cuEventRecord_ptsz = cuEventRecord(e: Handle, s: Handle) stream s, 7000;
    ptsz cuEventRecordWithFlags_ptsz = cuEventRecordWithFlags(e: Handle, s: Handle, f: c_uint) stream s, 11010;
    ptsz cuLaunchKernel_ptsz = cuLaunchKernel(
        f: Handle, gx: c_uint, gy: c_uint, gz: c_uint, bx: c_uint, by: c_uint, bz: c_uint,
        shared: c_uint, s: Handle, params: *mut *mut c_void, extra: *mut *mut c_void
    ) stream s, 7000;
}

/// `cuLaunchKernelEx_ptsz`: `cuLaunchKernelEx` with a NULL stream in the
/// configuration taken as the per-thread stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchKernelEx_ptsz(
    config: *const LaunchConfig,
    func: Handle,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    if config.is_null() {
        return crate::errors::CUDA_ERROR_INVALID_VALUE;
    }
    // SAFETY: non-null; cuda.h's contract makes it a configuration.
    let mut c = unsafe { config.read_unaligned() };
    c.h_stream = per_thread(c.h_stream);
    // SAFETY: the caller's arguments, with the stream named.
    unsafe { cuLaunchKernelEx(&c, func, params, extra) }
}
