//! The device's current memory pool, kept per guest process: the VMs of
//! an isolation group share the device, so one process's
//! `cuDeviceSetMemPool` must not change where another's `cuMemAllocAsync`
//! allocates. The guest library records the pool set for each device and
//! turns `cuMemAllocAsync` into `cuMemAllocFromPoolAsync` from it; a
//! device with none set uses its default pool, as the driver does.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::cuda::{self, CUdevice, CUdeviceptr, CUmemoryPool, CUresult, CUstream};

const CUDA_SUCCESS: CUresult = 0;
const CUDA_ERROR_INVALID_VALUE: CUresult = 1;

/// The pool set for each device (as the host's handle value).
static CURRENT: Mutex<Option<HashMap<CUdevice, usize>>> = Mutex::new(None);

fn current(dev: CUdevice) -> Option<CUmemoryPool> {
    CURRENT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&dev).copied())
        .map(|p| p as CUmemoryPool)
}

/// `cuDeviceGetMemPool`: the pool set, or the device's default pool.
///
/// # Safety
/// `pool` is NULL or writable.
pub unsafe fn device_get_mem_pool(pool: *mut CUmemoryPool, dev: CUdevice) -> Option<CUresult> {
    if pool.is_null() {
        return Some(CUDA_ERROR_INVALID_VALUE);
    }
    if let Some(p) = current(dev) {
        // SAFETY: `pool` is not NULL.
        unsafe { *pool = p };
        return Some(CUDA_SUCCESS);
    }
    // SAFETY: as the caller's.
    Some(unsafe { cuda::cuDeviceGetDefaultMemPool(pool, dev) })
}

/// `cuDeviceSetMemPool`: the device must exist and the pool be live
/// (asked of the worker: its reuse attribute).
///
/// # Safety
/// None: `pool` is a handle, checked by the worker.
pub unsafe fn device_set_mem_pool(dev: CUdevice, pool: CUmemoryPool) -> Option<CUresult> {
    let mut default: CUmemoryPool = std::ptr::null_mut();
    // SAFETY: the output is a local.
    let rc = unsafe { cuda::cuDeviceGetDefaultMemPool(&mut default, dev) };
    if rc != CUDA_SUCCESS {
        return Some(rc);
    }
    let mut flag = 0i32;
    // SAFETY: attribute 1 (a reuse flag) is an int; the output is a local.
    let rc = unsafe { cuda::cuMemPoolGetAttribute(pool, 1, (&mut flag as *mut i32).cast()) };
    if rc != CUDA_SUCCESS {
        return Some(rc);
    }
    CURRENT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(dev, pool as usize);
    Some(CUDA_SUCCESS)
}

/// `cuMemPoolDestroy`: a destroyed current pool gives way to the default
/// one; the call itself goes on to the worker.
///
/// # Safety
/// None: only the record is changed.
pub unsafe fn mem_pool_destroy(pool: CUmemoryPool) -> Option<CUresult> {
    if let Some(m) = CURRENT.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        m.retain(|_, p| *p != pool as usize);
    }
    None
}

/// `cuMemAllocAsync`: from the pool set for the current context's device,
/// if one is; otherwise the call goes on (the default pool).
///
/// # Safety
/// As `cuMemAllocAsync`'s.
pub unsafe fn mem_alloc_async(
    dptr: *mut CUdeviceptr,
    size: usize,
    stream: CUstream,
) -> Option<CUresult> {
    let any = CURRENT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(|m| !m.is_empty());
    if !any {
        return None;
    }
    let mut dev: CUdevice = 0;
    // SAFETY: the output is a local.
    if unsafe { cuda::cuCtxGetDevice(&mut dev) } != CUDA_SUCCESS {
        return None;
    }
    let pool = current(dev)?;
    // SAFETY: as the caller's, with the pool recorded.
    Some(unsafe { cuda::cuMemAllocFromPoolAsync(dptr, size, pool, stream) })
}
