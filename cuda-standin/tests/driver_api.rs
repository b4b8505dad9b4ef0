//! The stand-in's driver API called in-process (the crate is also an rlib):
//! error cases, sticky faults, `cuGetProcAddress_v2`. Each test works in
//! its own context on its own thread.

use std::ffi::{CStr, c_void};
use std::ptr::null_mut;

use ava_cuda_standin::api::*;
use ava_cuda_standin::errors::*;
use ava_cuda_standin::procaddr::*;
use ava_cuda_standin::{CUdeviceptr, Handle};

const PTX: &str = concat!(include_str!("../../samples/cuda/kernels.ptx"), "\0");

/// Calls an API function, asserting its result.
macro_rules! ok {
    ($e:expr) => {
        // SAFETY: every call passes valid out-parameters of the right type.
        assert_eq!(unsafe { $e }, CUDA_SUCCESS, "{}", stringify!($e))
    };
}
macro_rules! err {
    ($code:expr, $e:expr) => {
        // SAFETY: every call passes valid out-parameters of the right type.
        assert_eq!(unsafe { $e }, $code, "{}", stringify!($e))
    };
}

/// A fresh context, current on this thread, and the fixtures' module.
fn setup() -> (Handle, Handle) {
    ok!(cuInit(0));
    let mut ctx = null_mut();
    ok!(cuCtxCreate_v2(&mut ctx, 0, 0));
    let mut module = null_mut();
    ok!(cuModuleLoadData(&mut module, PTX.as_ptr().cast()));
    (ctx, module)
}

fn function(module: Handle, name: &CStr) -> Handle {
    let mut f = null_mut();
    ok!(cuModuleGetFunction(&mut f, module, name.as_ptr()));
    f
}

fn alloc(n: usize) -> CUdeviceptr {
    let mut p = 0;
    ok!(cuMemAlloc_v2(&mut p, n));
    p
}

fn launch(f: Handle, grid: u32, block: u32, args: &mut [*mut c_void]) -> u32 {
    // SAFETY: `args` holds one pointer per kernel parameter.
    unsafe {
        cuLaunchKernel(
            f,
            grid,
            1,
            1,
            block,
            1,
            1,
            0,
            null_mut(),
            args.as_mut_ptr(),
            null_mut(),
        )
    }
}

#[test]
fn kernels_compute_and_copies_check_ranges() {
    let (ctx, module) = setup();
    let n = 1000usize;
    let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let b: Vec<f32> = (0..n).map(|i| 2.0 * i as f32).collect();
    let (da, db, dc) = (alloc(4 * n), alloc(4 * n), alloc(4 * n));
    assert!(da != 0 && db != 0 && dc != 0);
    ok!(cuMemcpyHtoD_v2(da, a.as_ptr().cast(), 4 * n));
    ok!(cuMemcpyHtoD_v2(db, b.as_ptr().cast(), 4 * n));
    let f = function(module, c"vector_add");
    let (mut pa, mut pb, mut pc, mut pn) = (da, db, dc, n as u32);
    let mut args = [
        (&raw mut pa).cast(),
        (&raw mut pb).cast(),
        (&raw mut pc).cast(),
        (&raw mut pn).cast::<c_void>(),
    ];
    assert_eq!(launch(f, 4, 256, &mut args), CUDA_SUCCESS);
    // More than 1024 threads per block.
    assert_eq!(launch(f, 1, 2048, &mut args), CUDA_ERROR_INVALID_VALUE);
    // SAFETY: as above.
    err!(
        CUDA_ERROR_INVALID_VALUE,
        cuLaunchKernel(
            f,
            1,
            1,
            1,
            64,
            32,
            1,
            0,
            null_mut(),
            args.as_mut_ptr(),
            null_mut()
        )
    );
    let mut out = vec![0f32; n];
    ok!(cuCtxSynchronize());
    ok!(cuMemcpyDtoH_v2(out.as_mut_ptr().cast(), dc, 4 * n));
    assert!(out.iter().enumerate().all(|(i, v)| *v == 3.0 * i as f32));

    // Device to device, memset, ranges.
    ok!(cuMemcpyDtoD_v2(da, dc, 4 * n));
    ok!(cuMemsetD32_v2(db, 0x3f80_0000, n));
    ok!(cuMemcpyDtoH_v2(out.as_mut_ptr().cast(), db, 4 * n));
    assert!(out.iter().all(|v| *v == 1.0));
    err!(
        CUDA_ERROR_INVALID_VALUE,
        cuMemcpyHtoD_v2(da, a.as_ptr().cast(), 4 * n + 4)
    );
    err!(
        CUDA_ERROR_INVALID_VALUE,
        cuMemcpyDtoH_v2(out.as_mut_ptr().cast(), da + 8, 4 * n)
    );
    err!(CUDA_ERROR_INVALID_VALUE, cuMemcpyDtoD_v2(0, da, 4));

    // Freed pointers.
    ok!(cuMemFree_v2(db));
    err!(CUDA_ERROR_INVALID_VALUE, cuMemFree_v2(db));
    err!(
        CUDA_ERROR_INVALID_VALUE,
        cuMemcpyDtoH_v2(out.as_mut_ptr().cast(), db, 4)
    );

    // Pointer attributes.
    let mut start: u64 = 0;
    ok!(cuPointerGetAttribute((&raw mut start).cast(), 11, da + 12));
    assert_eq!(start, da);
    let mut size: u64 = 0;
    ok!(cuPointerGetAttribute((&raw mut size).cast(), 12, da));
    assert_eq!(size, 4 * n as u64);
    let mut mtype: u32 = 0;
    ok!(cuPointerGetAttribute((&raw mut mtype).cast(), 2, da));
    assert_eq!(mtype, 2);
    let mut owner: Handle = null_mut();
    ok!(cuPointerGetAttribute((&raw mut owner).cast(), 1, da));
    assert_eq!(owner, ctx);

    // Parameter layout from the signature.
    let (mut off, mut sz) = (0usize, 0usize);
    ok!(cuFuncGetParamInfo(f, 3, &mut off, &mut sz));
    assert_eq!((off, sz), (24, 4));
    err!(
        CUDA_ERROR_INVALID_VALUE,
        cuFuncGetParamInfo(f, 4, &mut off, &mut sz)
    );

    ok!(cuCtxDestroy_v2(ctx));
    err!(CUDA_ERROR_INVALID_CONTEXT, cuCtxSynchronize());
}

#[test]
fn invalid_and_destroyed_handles() {
    let (ctx, module) = setup();
    let mut f = null_mut();
    err!(
        CUDA_ERROR_NOT_FOUND,
        cuModuleGetFunction(&mut f, module, c"no_such_kernel".as_ptr())
    );
    let bogus = 0xdead_beef_usize as Handle;
    err!(
        CUDA_ERROR_INVALID_HANDLE,
        cuModuleGetFunction(&mut f, bogus, c"saxpy".as_ptr())
    );
    err!(CUDA_ERROR_INVALID_HANDLE, cuStreamSynchronize(bogus));
    err!(CUDA_ERROR_INVALID_HANDLE, cuEventQuery(bogus));
    err!(CUDA_ERROR_INVALID_CONTEXT, cuCtxPushCurrent_v2(bogus));
    // A module handle is not a function handle.
    assert_eq!(launch(module, 1, 1, &mut []), CUDA_ERROR_INVALID_HANDLE);

    let mut s = null_mut();
    ok!(cuStreamCreate(&mut s, 0));
    ok!(cuStreamDestroy_v2(s));
    err!(CUDA_ERROR_INVALID_HANDLE, cuStreamSynchronize(s));
    let mut e = null_mut();
    ok!(cuEventCreate(&mut e, 0));
    let mut ms = 0f32;
    err!(CUDA_ERROR_INVALID_HANDLE, cuEventElapsedTime(&mut ms, e, e));
    ok!(cuEventRecord(e, null_mut()));
    ok!(cuEventElapsedTime(&mut ms, e, e));
    ok!(cuEventDestroy_v2(e));
    err!(CUDA_ERROR_INVALID_HANDLE, cuEventSynchronize(e));

    let empty = function(module, c"empty");
    ok!(cuModuleUnload(module));
    assert_eq!(launch(empty, 1, 1, &mut []), CUDA_ERROR_INVALID_HANDLE);
    err!(CUDA_ERROR_INVALID_HANDLE, cuModuleUnload(module));

    let mut bad = null_mut();
    err!(
        CUDA_ERROR_INVALID_PTX,
        cuModuleLoadData(&mut bad, c"this is not PTX".as_ptr().cast())
    );
    ok!(cuCtxDestroy_v2(ctx));
    err!(CUDA_ERROR_INVALID_CONTEXT, cuCtxDestroy_v2(ctx));
    err!(CUDA_ERROR_INVALID_CONTEXT, cuCtxSetCurrent(ctx));
}

#[test]
fn kernel_fault_is_sticky_until_the_context_is_destroyed() {
    let (ctx, module) = setup();
    let p = alloc(64);
    let fault = function(module, c"fault");
    let empty = function(module, c"empty");
    let mut pp = p;
    let mut args = [(&raw mut pp).cast::<c_void>()];
    assert_eq!(launch(fault, 1, 1, &mut args), CUDA_SUCCESS);
    err!(CUDA_ERROR_ILLEGAL_ADDRESS, cuCtxSynchronize());
    err!(CUDA_ERROR_ILLEGAL_ADDRESS, cuStreamSynchronize(null_mut()));
    let mut q = 0;
    err!(CUDA_ERROR_ILLEGAL_ADDRESS, cuMemAlloc_v2(&mut q, 16));
    assert_eq!(launch(empty, 1, 1, &mut []), CUDA_ERROR_ILLEGAL_ADDRESS);
    ok!(cuCtxDestroy_v2(ctx));

    // A fresh context works.
    let (ctx2, module2) = setup();
    let empty = function(module2, c"empty");
    assert_eq!(launch(empty, 1, 32, &mut []), CUDA_SUCCESS);
    ok!(cuCtxSynchronize());
    ok!(cuCtxDestroy_v2(ctx2));
}

#[test]
fn same_kernel_name_in_two_modules() {
    let (ctx, m1) = setup();
    let mut m2 = null_mut();
    let other = c".version 8.7\n.target sm_80\n.address_size 64\n.visible .entry empty(\n\t.param .u64 empty_param_0\n)\n{\n\tret;\n}\n";
    ok!(cuModuleLoadData(&mut m2, other.as_ptr().cast()));
    let (f1, f2) = (function(m1, c"empty"), function(m2, c"empty"));
    assert_ne!(f1, f2);
    let (mut off, mut sz) = (0, 0);
    err!(
        CUDA_ERROR_INVALID_VALUE,
        cuFuncGetParamInfo(f1, 0, &mut off, &mut sz)
    );
    ok!(cuFuncGetParamInfo(f2, 0, &mut off, &mut sz));
    assert_eq!(sz, 8);
    let mut x = 0u64;
    assert_eq!(launch(f2, 1, 1, &mut [(&raw mut x).cast()]), CUDA_SUCCESS);
    assert_eq!(launch(f1, 1, 1, &mut []), CUDA_SUCCESS);
    ok!(cuCtxDestroy_v2(ctx));
}

#[test]
fn proc_address_found_and_unknown() {
    let mut pfn = null_mut();
    let mut status = -1;
    ok!(cuGetProcAddress_v2(
        c"cuMemAlloc".as_ptr(),
        &mut pfn,
        12080,
        0,
        &mut status
    ));
    assert_eq!(status, SYMBOL_SUCCESS);
    assert_eq!(pfn as usize, cuMemAlloc_v2 as *const () as usize);
    // Per-thread default stream: the _ptsz form.
    ok!(cuGetProcAddress_v2(
        c"cuLaunchKernel".as_ptr(),
        &mut pfn,
        12080,
        2,
        &mut status
    ));
    assert_eq!(
        pfn as usize,
        ava_cuda_standin::per_thread::cuLaunchKernel_ptsz as *const () as usize
    );
    ok!(cuGetProcAddress_v2(
        c"cuNoSuchFunction".as_ptr(),
        &mut pfn,
        12080,
        0,
        &mut status
    ));
    assert_eq!((pfn, status), (null_mut(), SYMBOL_NOT_FOUND));
    err!(
        CUDA_ERROR_NOT_SUPPORTED,
        cuGetExportTable(null_mut(), std::ptr::null())
    );
}

#[test]
fn error_names_and_strings() {
    let mut s = std::ptr::null();
    for (code, name, text) in [
        (
            CUDA_ERROR_ILLEGAL_ADDRESS,
            "CUDA_ERROR_ILLEGAL_ADDRESS",
            "an illegal memory access was encountered",
        ),
        (
            CUDA_ERROR_INVALID_HANDLE,
            "CUDA_ERROR_INVALID_HANDLE",
            "invalid resource handle",
        ),
        (
            CUDA_ERROR_NOT_INITIALIZED,
            "CUDA_ERROR_NOT_INITIALIZED",
            "initialization error",
        ),
    ] {
        ok!(cuGetErrorName(code, &mut s));
        // SAFETY: a static NUL-terminated string.
        assert_eq!(unsafe { CStr::from_ptr(s) }.to_str().unwrap(), name);
        ok!(cuGetErrorString(code, &mut s));
        // SAFETY: as above.
        assert_eq!(unsafe { CStr::from_ptr(s) }.to_str().unwrap(), text);
    }
    err!(CUDA_ERROR_INVALID_VALUE, cuGetErrorName(12345, &mut s));
}
