//! Calls before `cuInit` (this test binary's only test, so nothing has
//! initialised the driver), then the primary context's life: retain,
//! a sticky fault, reset.

use std::ffi::c_void;
use std::ptr::null_mut;

use ava_cuda_standin::api::*;
use ava_cuda_standin::errors::*;

macro_rules! call {
    ($e:expr) => {
        // SAFETY: every call passes valid out-parameters of the right type.
        unsafe { $e }
    };
}

#[test]
fn before_init_then_primary_context() {
    let mut n = 0;
    let mut dev = 0;
    let mut p = 0u64;
    let mut ctx = null_mut();
    assert_eq!(call!(cuDeviceGetCount(&mut n)), CUDA_ERROR_NOT_INITIALIZED);
    assert_eq!(call!(cuDeviceGet(&mut dev, 0)), CUDA_ERROR_NOT_INITIALIZED);
    assert_eq!(call!(cuMemAlloc_v2(&mut p, 16)), CUDA_ERROR_NOT_INITIALIZED);
    assert_eq!(call!(cuCtxGetCurrent(&mut ctx)), CUDA_ERROR_NOT_INITIALIZED);
    assert_eq!(
        call!(cuDevicePrimaryCtxRetain(&mut ctx, 0)),
        CUDA_ERROR_NOT_INITIALIZED
    );
    let mut v = 0;
    assert_eq!(call!(cuDriverGetVersion(&mut v)), CUDA_SUCCESS);
    assert_eq!(v, 12080);
    assert_eq!(call!(cuInit(1)), CUDA_ERROR_INVALID_VALUE);
    assert_eq!(call!(cuInit(0)), CUDA_SUCCESS);

    assert_eq!(call!(cuDeviceGetCount(&mut n)), CUDA_SUCCESS);
    assert_eq!(n, 1);
    assert_eq!(call!(cuDeviceGet(&mut dev, 1)), CUDA_ERROR_INVALID_DEVICE);
    // No current context yet.
    assert_eq!(call!(cuMemAlloc_v2(&mut p, 16)), CUDA_ERROR_INVALID_CONTEXT);
    let mut attr = 0;
    assert_eq!(call!(cuDeviceGetAttribute(&mut attr, 115, 0)), CUDA_SUCCESS);
    assert_eq!(attr, 1, "memory pools are supported");
    assert_eq!(
        call!(cuDeviceGetAttribute(&mut attr, 9999, 0)),
        CUDA_ERROR_INVALID_VALUE
    );

    assert_eq!(call!(cuDevicePrimaryCtxRetain(&mut ctx, 0)), CUDA_SUCCESS);
    assert_eq!(call!(cuCtxSetCurrent(ctx)), CUDA_SUCCESS);
    let ptx = concat!(include_str!("../../samples/cuda/kernels.ptx"), "\0");
    let mut module = null_mut();
    assert_eq!(
        call!(cuModuleLoadData(&mut module, ptx.as_ptr().cast())),
        CUDA_SUCCESS
    );
    let mut fault = null_mut();
    assert_eq!(
        call!(cuModuleGetFunction(&mut fault, module, c"fault".as_ptr())),
        CUDA_SUCCESS
    );
    assert_eq!(call!(cuMemAlloc_v2(&mut p, 16)), CUDA_SUCCESS);
    let mut arg = p;
    let mut args = [(&raw mut arg).cast::<c_void>()];
    let launched = call!(cuLaunchKernel(
        fault,
        1,
        1,
        1,
        1,
        1,
        1,
        0,
        null_mut(),
        args.as_mut_ptr(),
        null_mut()
    ));
    assert_eq!(launched, CUDA_SUCCESS);
    assert_eq!(call!(cuCtxSynchronize()), CUDA_ERROR_ILLEGAL_ADDRESS);
    assert_eq!(call!(cuMemFree_v2(p)), CUDA_ERROR_ILLEGAL_ADDRESS);

    // Reset clears the fault and what the context owned.
    assert_eq!(call!(cuDevicePrimaryCtxReset_v2(0)), CUDA_SUCCESS);
    assert_eq!(call!(cuCtxSynchronize()), CUDA_SUCCESS);
    assert_eq!(call!(cuMemFree_v2(p)), CUDA_ERROR_INVALID_VALUE);
    assert_eq!(call!(cuModuleUnload(module)), CUDA_ERROR_INVALID_HANDLE);
    let (mut flags, mut active) = (0, 0);
    assert_eq!(
        call!(cuDevicePrimaryCtxGetState(0, &mut flags, &mut active)),
        CUDA_SUCCESS
    );
    assert_eq!(active, 1);
    assert_eq!(call!(cuDevicePrimaryCtxRelease_v2(0)), CUDA_SUCCESS);
    assert_eq!(
        call!(cuDevicePrimaryCtxGetState(0, &mut flags, &mut active)),
        CUDA_SUCCESS
    );
    assert_eq!(active, 0);
    assert_eq!(call!(cuCtxSynchronize()), CUDA_ERROR_INVALID_CONTEXT);
    assert_eq!(
        call!(cuDevicePrimaryCtxRelease_v2(0)),
        CUDA_ERROR_INVALID_CONTEXT
    );
}
