//! The per-thread default stream ABI (`_ptsz` and `_ptds` names), which
//! programs built with `--default-stream per-thread` link and which
//! `cuGetProcAddress` answers with
//! `CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM` (the host driver names
//! the function, this library answers with its own of that name). A
//! `_ptsz` function sends the NULL stream as `CU_STREAM_PER_THREAD`, so
//! the worker runs it on the per-thread default stream of the thread that
//! serves this guest thread; a `_ptds` function is the synchronous call,
//! which returns once its work is done whichever default stream it used.

use std::ffi::c_void;

use crate::cuda::{
    self, CUDA_MEMCPY2D, CUDA_MEMCPY3D, CUcontext, CUdeviceptr, CUevent, CUfunction, CUmemoryPool,
    CUresult, CUstream,
};

/// `CU_STREAM_PER_THREAD`.
const PER_THREAD: usize = 0x2;

/// The stream a `_ptsz` function means: NULL is the per-thread stream.
fn per_thread(stream: CUstream) -> CUstream {
    if stream.is_null() {
        PER_THREAD as CUstream
    } else {
        stream
    }
}

macro_rules! per_thread {
    ($(
        $name:ident = $base:ident($($arg:ident: $ty:ty),*) $(stream $s:ident)?;
    )*) => {$(
        #[doc = concat!("`", stringify!($name), "`: `", stringify!($base), "` on the thread's default stream.")]
        ///
        /// # Safety
        #[doc = concat!("As `", stringify!($base), "`'s.")]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> CUresult {
            $(let $s = per_thread($s);)?
            // SAFETY: the caller's arguments, under the same contract.
            unsafe { cuda::$base($($arg),*) }
        }
    )*};
}

per_thread! {
    cuMemcpy_ptds = cuMemcpy(dst: CUdeviceptr, src: CUdeviceptr, n: usize);
    cuMemcpyHtoD_v2_ptds = cuMemcpyHtoD_v2(dst: CUdeviceptr, src: *const c_void, n: usize);
    cuMemcpyDtoH_v2_ptds = cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, n: usize);
    cuMemcpyDtoD_v2_ptds = cuMemcpyDtoD_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize);
    cuMemcpy2D_v2_ptds = cuMemcpy2D_v2(p: *const CUDA_MEMCPY2D);
    cuMemcpy2DUnaligned_v2_ptds = cuMemcpy2DUnaligned_v2(p: *const CUDA_MEMCPY2D);
    cuMemcpy3D_v2_ptds = cuMemcpy3D_v2(p: *const CUDA_MEMCPY3D);
    cuMemsetD8_v2_ptds = cuMemsetD8_v2(dst: CUdeviceptr, v: u8, n: usize);
    cuMemsetD16_v2_ptds = cuMemsetD16_v2(dst: CUdeviceptr, v: u16, n: usize);
    cuMemsetD32_v2_ptds = cuMemsetD32_v2(dst: CUdeviceptr, v: u32, n: usize);
    cuMemcpyAsync_ptsz = cuMemcpyAsync(dst: CUdeviceptr, src: CUdeviceptr, n: usize, s: CUstream) stream s;
    cuMemcpyHtoDAsync_v2_ptsz = cuMemcpyHtoDAsync_v2(dst: CUdeviceptr, src: *const c_void, n: usize, s: CUstream) stream s;
    cuMemcpyDtoHAsync_v2_ptsz = cuMemcpyDtoHAsync_v2(dst: *mut c_void, src: CUdeviceptr, n: usize, s: CUstream) stream s;
    cuMemcpyDtoDAsync_v2_ptsz = cuMemcpyDtoDAsync_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize, s: CUstream) stream s;
    cuMemcpy2DAsync_v2_ptsz = cuMemcpy2DAsync_v2(p: *const CUDA_MEMCPY2D, s: CUstream) stream s;
    cuMemcpy3DAsync_v2_ptsz = cuMemcpy3DAsync_v2(p: *const CUDA_MEMCPY3D, s: CUstream) stream s;
    cuMemsetD8Async_ptsz = cuMemsetD8Async(dst: CUdeviceptr, v: u8, n: usize, s: CUstream) stream s;
    cuMemsetD16Async_ptsz = cuMemsetD16Async(dst: CUdeviceptr, v: u16, n: usize, s: CUstream) stream s;
    cuMemsetD32Async_ptsz = cuMemsetD32Async(dst: CUdeviceptr, v: u32, n: usize, s: CUstream) stream s;
    cuMemAllocAsync_ptsz = cuMemAllocAsync(p: *mut CUdeviceptr, n: usize, s: CUstream) stream s;
    cuMemAllocFromPoolAsync_ptsz = cuMemAllocFromPoolAsync(p: *mut CUdeviceptr, n: usize, pool: CUmemoryPool, s: CUstream) stream s;
    cuMemFreeAsync_ptsz = cuMemFreeAsync(p: CUdeviceptr, s: CUstream) stream s;
    cuStreamGetPriority_ptsz = cuStreamGetPriority(s: CUstream, p: *mut i32) stream s;
    cuStreamGetFlags_ptsz = cuStreamGetFlags(s: CUstream, f: *mut u32) stream s;
    cuStreamGetCtx_ptsz = cuStreamGetCtx(s: CUstream, c: *mut CUcontext) stream s;
    cuStreamWaitEvent_ptsz = cuStreamWaitEvent(s: CUstream, e: CUevent, f: u32) stream s;
    cuStreamSynchronize_ptsz = cuStreamSynchronize(s: CUstream) stream s;
    cuStreamQuery_ptsz = cuStreamQuery(s: CUstream) stream s;
    cuStreamAddCallback_ptsz = cuStreamAddCallback(s: CUstream, cb: *mut c_void, u: *mut c_void, f: u32) stream s;
    cuLaunchHostFunc_ptsz = cuLaunchHostFunc(s: CUstream, f: *mut c_void, u: *mut c_void) stream s;
    cuEventRecord_ptsz = cuEventRecord(e: CUevent, s: CUstream) stream s;
    cuEventRecordWithFlags_ptsz = cuEventRecordWithFlags(e: CUevent, s: CUstream, f: u32) stream s;
    cuLaunchKernel_ptsz = cuLaunchKernel(
        f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32,
        shared: u32, s: CUstream, params: *mut *mut c_void, extra: *mut *mut c_void
    ) stream s;
}

/// `cuLaunchKernelEx_ptsz`: `cuLaunchKernelEx` with a NULL stream in the
/// configuration taken as the per-thread stream.
///
/// # Safety
/// As `cuLaunchKernelEx`'s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchKernelEx_ptsz(
    config: *const cuda::CUlaunchConfig,
    f: CUfunction,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    if config.is_null() {
        return cuda::CUDA_ERROR_INVALID_VALUE;
    }
    // SAFETY: non-NULL; the application passes a configuration.
    let mut c = unsafe { config.read_unaligned() };
    c.hStream = per_thread(c.hStream as usize as CUstream) as usize as u64;
    // SAFETY: the caller's arguments, with the stream named.
    unsafe { cuda::cuLaunchKernelEx(&c, f, params, extra) }
}
