//! CUDA device memory per guest process: every allocation is recorded with
//! its owner (VM and process) and charged to the VM's memory quota; a
//! process frees only its own allocations; what a process leaves behind is
//! freed when it goes away. Launches are counted by the admission policy.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use remoting::worker::{Admission, CallCtx, Caller, DispatchError};

use crate::cuda::{Api, CUcontext, CUdeviceptr, CUfunction, CUresult, CUstream};
use server::policy::resource;

const CUDA_SUCCESS: CUresult = 0;
const CUDA_ERROR_INVALID_VALUE: CUresult = 1;
const CUDA_ERROR_OUT_OF_MEMORY: CUresult = 2;

/// One live allocation.
struct Allocation {
    /// The VM (region name) and guest process that made it.
    vm: String,
    owner: u32,
    bytes: u64,
    /// The context current when it was made (made current again to free
    /// it after its process is gone).
    ctx: u64,
    /// Who was charged for it, to credit.
    charged: Option<(Arc<dyn Admission>, Caller)>,
}

/// Live allocations by device address.
static ALLOCATIONS: Mutex<Option<BTreeMap<CUdeviceptr, Allocation>>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut BTreeMap<CUdeviceptr, Allocation>) -> R) -> R {
    f(ALLOCATIONS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(BTreeMap::new))
}

/// Records an allocation the driver made for the caller, charging it to
/// the VM's quota; beyond the quota it is freed again and the call is
/// `CUDA_ERROR_OUT_OF_MEMORY`.
fn record(api: &Api, cx: &CallCtx<'_>, ptr: CUdeviceptr, bytes: u64) -> CUresult {
    let caller = cx.session.caller.clone();
    let charged = match cx.session.admission.clone() {
        Some(a) if !a.charge(&caller, resource::MEMORY, bytes as i64) => {
            tracing::debug!(vm = %caller.vm, bytes, "CUDA allocation refused: memory quota");
            if let Some(free) = api.cuMemFree_v2 {
                // SAFETY: the allocation the call just made; nobody has
                // seen it.
                unsafe { free(ptr) };
            }
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        Some(a) => Some((a, caller.clone())),
        None => None,
    };
    let mut ctx: CUcontext = std::ptr::null_mut();
    if let Some(current) = api.cuCtxGetCurrent {
        // SAFETY: the output is a local.
        unsafe { current(&mut ctx) };
    }
    with(|m| {
        m.insert(
            ptr,
            Allocation {
                vm: caller.vm,
                owner: caller.owner,
                bytes,
                ctx: ctx as u64,
                charged,
            },
        )
    });
    CUDA_SUCCESS
}

/// Whether the `len` bytes at `ptr` touch an allocation of another VM than
/// `vm` (allocations never overlap, so the last one starting below the
/// range's end is the only one that can reach into it from below).
pub fn foreign(vm: &str, ptr: CUdeviceptr, len: u64) -> bool {
    let end = ptr.saturating_add(len.max(1));
    with(|m| {
        m.range(..end)
            .rev()
            .take_while(|(base, a)| base.saturating_add(a.bytes) > ptr)
            .any(|(_, a)| a.vm != vm)
    })
}

/// `Err(CUDA_ERROR_INVALID_VALUE)` when one of `ranges` (address, length)
/// touches another VM's allocation: a VM's copies and memsets reach only
/// its own memory and memory the worker does not track, never another
/// VM's allocations in a shared isolation group.
pub fn own_ranges(cx: &CallCtx<'_>, ranges: &[(CUdeviceptr, u64)]) -> Result<(), DispatchError> {
    let vm = &cx.session.caller.vm;
    match ranges.iter().find(|&&(p, n)| foreign(vm, p, n)) {
        Some(&(p, n)) => {
            tracing::warn!(vm = %vm, address = p, bytes = n, "a CUDA copy or memset reaches another VM's memory: refused");
            Err(DispatchError::Api(CUDA_ERROR_INVALID_VALUE.into()))
        }
        None => Ok(()),
    }
}

/// Forgets `ptr` if the caller owns it, crediting its charge; whether it
/// was the caller's.
fn forget(cx: &CallCtx<'_>, ptr: CUdeviceptr) -> bool {
    let caller = &cx.session.caller;
    let gone = with(|m| match m.get(&ptr) {
        Some(a) if a.vm == caller.vm && a.owner == caller.owner => m.remove(&ptr),
        _ => None,
    });
    match gone {
        Some(a) => {
            if let Some((admission, who)) = a.charged {
                admission.charge(&who, resource::MEMORY, -(a.bytes as i64));
            }
            true
        }
        None => false,
    }
}

/// An allocator's result: on success, the allocation at `*dptr` is
/// recorded and charged ([`record`]).
///
/// # Safety
/// `dptr` is NULL or, when `rc` is success, holds the address the driver
/// wrote.
unsafe fn record_made(
    api: &Api,
    cx: &mut CallCtx<'_>,
    rc: CUresult,
    dptr: *const CUdeviceptr,
    bytes: usize,
) -> CUresult {
    if rc != CUDA_SUCCESS || dptr.is_null() {
        return rc;
    }
    // SAFETY: as the caller's.
    record(api, cx, unsafe { *dptr }, bytes as u64)
}

/// `cuMemAlloc_v2`, recorded and charged.
///
/// # Safety
/// `dptr` is NULL or points to a writable `CUdeviceptr`.
pub unsafe fn mem_alloc(
    api: &Api,
    cx: &mut CallCtx<'_>,
    dptr: *mut CUdeviceptr,
    bytesize: usize,
) -> Result<CUresult, DispatchError> {
    let f = api
        .cuMemAlloc_v2
        .ok_or(DispatchError::Unavailable("cuMemAlloc_v2"))?;
    // SAFETY: the caller's arguments.
    let rc = unsafe { f(dptr, bytesize) };
    // SAFETY: the driver wrote the address if it succeeded.
    Ok(unsafe { record_made(api, cx, rc, dptr, bytesize) })
}

/// `cuMemAllocPitch_v2`, recorded and charged (pitch × height bytes).
///
/// # Safety
/// `dptr` and `pitch` are NULL or writable.
pub unsafe fn mem_alloc_pitch(
    api: &Api,
    cx: &mut CallCtx<'_>,
    dptr: *mut CUdeviceptr,
    pitch: *mut usize,
    width: usize,
    height: usize,
    element: u32,
) -> Result<CUresult, DispatchError> {
    let f = api
        .cuMemAllocPitch_v2
        .ok_or(DispatchError::Unavailable("cuMemAllocPitch_v2"))?;
    // SAFETY: the caller's arguments.
    let rc = unsafe { f(dptr, pitch, width, height, element) };
    if rc != CUDA_SUCCESS || dptr.is_null() || pitch.is_null() {
        return Ok(rc);
    }
    // SAFETY: the driver wrote both.
    let (ptr, bytes) = unsafe { (*dptr, (*pitch as u64).saturating_mul(height as u64)) };
    Ok(record(api, cx, ptr, bytes))
}

/// `cuMemAllocAsync`, recorded and charged.
///
/// # Safety
/// `dptr` is NULL or writable; `stream` a translated stream.
pub unsafe fn mem_alloc_async(
    api: &Api,
    cx: &mut CallCtx<'_>,
    dptr: *mut CUdeviceptr,
    bytesize: usize,
    stream: CUstream,
) -> Result<CUresult, DispatchError> {
    let f = api
        .cuMemAllocAsync
        .ok_or(DispatchError::Unavailable("cuMemAllocAsync"))?;
    // SAFETY: the caller's arguments.
    let rc = unsafe { f(dptr, bytesize, stream) };
    // SAFETY: the driver wrote the address if it succeeded.
    Ok(unsafe { record_made(api, cx, rc, dptr, bytesize) })
}

/// `cuMemAllocFromPoolAsync`, recorded and charged.
///
/// # Safety
/// `dptr` is NULL or writable; `pool` and `stream` are translated handles.
pub unsafe fn mem_alloc_from_pool_async(
    api: &Api,
    cx: &mut CallCtx<'_>,
    dptr: *mut CUdeviceptr,
    bytesize: usize,
    pool: crate::cuda::CUmemoryPool,
    stream: CUstream,
) -> Result<CUresult, DispatchError> {
    let f = api
        .cuMemAllocFromPoolAsync
        .ok_or(DispatchError::Unavailable("cuMemAllocFromPoolAsync"))?;
    // SAFETY: the caller's arguments.
    let rc = unsafe { f(dptr, bytesize, pool, stream) };
    // SAFETY: the driver wrote the address if it succeeded.
    Ok(unsafe { record_made(api, cx, rc, dptr, bytesize) })
}

/// `cuMemFree_v2` of one of the caller's allocations; any other address
/// (another process's, freed, never allocated) is
/// `CUDA_ERROR_INVALID_VALUE`, as the driver answers an unknown one.
///
/// # Safety
/// None beyond the driver's.
pub unsafe fn mem_free(
    api: &Api,
    cx: &mut CallCtx<'_>,
    dptr: CUdeviceptr,
) -> Result<CUresult, DispatchError> {
    let f = api
        .cuMemFree_v2
        .ok_or(DispatchError::Unavailable("cuMemFree_v2"))?;
    if !forget(cx, dptr) {
        return Ok(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: a live allocation of this process.
    Ok(unsafe { f(dptr) })
}

/// `cuMemFreeAsync` of one of the caller's allocations.
///
/// # Safety
/// `stream` is a translated stream.
pub unsafe fn mem_free_async(
    api: &Api,
    cx: &mut CallCtx<'_>,
    dptr: CUdeviceptr,
    stream: CUstream,
) -> Result<CUresult, DispatchError> {
    let f = api
        .cuMemFreeAsync
        .ok_or(DispatchError::Unavailable("cuMemFreeAsync"))?;
    if !forget(cx, dptr) {
        return Ok(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: a live allocation of this process.
    Ok(unsafe { f(dptr, stream) })
}

/// Frees every allocation guest process `owner` of VM `vm` left behind,
/// each with the context it was made in current (crediting the quota).
pub fn free_all_of(api: &Api, vm: &str, owner: u32) {
    let left: Vec<(CUdeviceptr, Allocation)> = with(|m| {
        let ptrs: Vec<CUdeviceptr> = m
            .iter()
            .filter(|(_, a)| a.vm == vm && a.owner == owner)
            .map(|(&p, _)| p)
            .collect();
        ptrs.into_iter()
            .filter_map(|p| m.remove(&p).map(|a| (p, a)))
            .collect()
    });
    if left.is_empty() {
        return;
    }
    tracing::info!(
        vm,
        owner,
        allocations = left.len(),
        "freeing the CUDA memory a guest left"
    );
    for (ptr, a) in left {
        // SAFETY: the context the allocation was made in (a primary
        // context stays alive: the executor holds a reference), and an
        // allocation nobody else owns.
        unsafe {
            if let Some(set) = api.cuCtxSetCurrent {
                set(a.ctx as usize as *mut c_void);
            }
            if let Some(free) = api.cuMemFree_v2 {
                free(ptr);
            }
        }
        if let Some((admission, who)) = a.charged {
            admission.charge(&who, resource::MEMORY, -(a.bytes as i64));
        }
    }
}

/// `cuLaunchKernel`, counted by the admission policy: it admitted the
/// launch (launch rate limits, priorities); the kernel's device time is not
/// measured, so the launch is reported back at once, without one.
///
/// # Safety
/// The arguments as the dispatcher translated them.
#[allow(clippy::too_many_arguments)]
pub unsafe fn launch_kernel(
    api: &Api,
    cx: &mut CallCtx<'_>,
    f: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    shared: u32,
    stream: CUstream,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> Result<CUresult, DispatchError> {
    let launch = api
        .cuLaunchKernel
        .ok_or(DispatchError::Unavailable("cuLaunchKernel"))?;
    // SAFETY: the dispatcher checked the parameters against the kernel's.
    let rc = unsafe { launch(f, gx, gy, gz, bx, by, bz, shared, stream, params, extra) };
    Ok(launched(cx, rc))
}

/// Reports a launch the admission policy admitted back to it (without a
/// device time: it is not measured); passes the launch's result on.
fn launched(cx: &CallCtx<'_>, rc: CUresult) -> CUresult {
    if let Some(a) = &cx.session.admission {
        a.completed(&cx.session.caller, resource::KERNEL, None);
    }
    rc
}

/// The bytes of one `CUlaunchAttribute`: its id (4 bytes), padding, and a
/// 64-byte value.
const LAUNCH_ATTRIBUTE: usize = 72;
/// Attributes whose value starts with a `CUevent`: programmatic events and
/// launch completion events.
const EVENT_ATTRIBUTES: [u32; 2] = [7, 12];
/// `CU_LAUNCH_ATTRIBUTE_DEVICE_UPDATABLE_KERNEL_NODE`: graphs are not
/// remoted.
const GRAPH_NODE_ATTRIBUTE: u32 = 13;

/// `avaLaunchKernelEx`: `cuLaunchKernelEx` with the guest's configuration,
/// the events its attributes name translated to the driver's; counted by
/// the admission policy as [`launch_kernel`].
///
/// # Safety
/// `attrs` holds `num_attrs` attributes and `params` the kernel's
/// parameters (checked by the dispatcher).
#[allow(clippy::too_many_arguments)]
pub unsafe fn launch_kernel_ex(
    api: &Api,
    cx: &mut CallCtx<'_>,
    f: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    shared: u32,
    stream: CUstream,
    num_attrs: u32,
    attrs: *const u8,
    params: *mut *mut c_void,
) -> Result<CUresult, DispatchError> {
    let launch = api
        .cuLaunchKernelEx
        .ok_or(DispatchError::Unavailable("cuLaunchKernelEx"))?;
    let n = num_attrs as usize * LAUNCH_ATTRIBUTE;
    let mut bytes = if n == 0 || attrs.is_null() {
        Vec::new()
    } else {
        // SAFETY: the dispatcher checked that `attrs` holds the attributes.
        unsafe { std::slice::from_raw_parts(attrs, n) }.to_vec()
    };
    for a in bytes.chunks_exact_mut(LAUNCH_ATTRIBUTE) {
        let id = u32::from_ne_bytes(a[..4].try_into().expect("4 bytes"));
        if id == GRAPH_NODE_ATTRIBUTE {
            return Ok(crate::cuda::CUDA_ERROR_NOT_SUPPORTED);
        }
        if EVENT_ATTRIBUTES.contains(&id) {
            let guest = u64::from_ne_bytes(a[8..16].try_into().expect("8 bytes"));
            let host = cx.handle(guest, crate::cuda::kind::CUevent, 400)?;
            a[8..16].copy_from_slice(&host.to_ne_bytes());
        }
    }
    let config = crate::cuda::CUlaunchConfig {
        gridDimX: gx,
        gridDimY: gy,
        gridDimZ: gz,
        blockDimX: bx,
        blockDimY: by,
        blockDimZ: bz,
        sharedMemBytes: shared,
        pad: 0,
        hStream: stream as usize as u64,
        attrs: if bytes.is_empty() {
            0
        } else {
            bytes.as_ptr() as u64
        },
        numAttrs: (bytes.len() / LAUNCH_ATTRIBUTE) as u32,
        pad2: 0,
    };
    // SAFETY: `config` and its attributes live across the call; the
    // dispatcher checked the parameters against the kernel's.
    let rc = unsafe { launch(&config, f, params, std::ptr::null_mut()) };
    Ok(launched(cx, rc))
}
