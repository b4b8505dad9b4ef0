//! Stream-ordered memory pools: the device's default pool (made at first
//! use), pools made by `cuMemPoolCreate`, the device's current pool, which
//! `cuMemAllocAsync` allocates from, and the pool attributes (reuse flags,
//! release threshold, reserved and used memory with their high marks).
//! A pool keeps no memory of its own: reserved memory is what is in use.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_int, c_void};

use crate::errors::*;
use crate::state::{self, Kind, Pool, R, State, handle, id_of};
use crate::{CUdevice, CUdeviceptr, CUresult, Handle};

/// `CUmemPoolProps` of cuda.h (its fields, in its order).
#[allow(missing_docs)]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PoolProps {
    pub alloc_type: c_int,
    pub handle_types: c_int,
    pub location_type: c_int,
    pub location_id: c_int,
    pub win32_security_attributes: *mut c_void,
    pub max_size: usize,
    pub usage: u16,
    pub reserved: [u8; 54],
}

const CU_MEM_ALLOCATION_TYPE_PINNED: c_int = 1;
const CU_MEM_LOCATION_TYPE_DEVICE: c_int = 1;
/// `CU_MEMPOOL_ATTR_*`: the reuse flags (ints), the release threshold,
/// reserved and used memory, current and high.
const ATTR_RELEASE_THRESHOLD: usize = 4;
const ATTR_RESERVED_CURRENT: usize = 5;
const ATTR_RESERVED_HIGH: usize = 6;
const ATTR_USED_CURRENT: usize = 7;
const ATTR_USED_HIGH: usize = 8;

fn api(f: impl FnOnce() -> R<()>) -> CUresult {
    crate::api::api(f)
}

fn new_pool(default: bool) -> Pool {
    let mut attrs = [0u64; 9];
    // The reuse flags are on by default.
    attrs[1..=3].fill(1);
    Pool { attrs, default }
}

impl State {
    /// The device's default pool, made at first use.
    fn default_pool(&mut self) -> u64 {
        if let Some(p) = self.default_pool {
            return p;
        }
        let id = self.id();
        self.pools.insert(id, new_pool(true));
        self.default_pool = Some(id);
        id
    }

    /// The pool id in `h`, live.
    fn pool(&self, h: Handle) -> R<u64> {
        let id = id_of(Kind::Pool, h).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        self.pools
            .contains_key(&id)
            .then_some(id)
            .ok_or(CUDA_ERROR_INVALID_HANDLE)
    }

    /// Bytes in use from pool `id`.
    fn pool_used(&self, id: u64) -> u64 {
        self.allocs
            .values()
            .filter(|a| a.pool == Some(id))
            .map(|a| a.size.div_ceil(state::ALIGN) * state::ALIGN)
            .sum()
    }

    /// Allocates `size` bytes from pool `pool` in stream order on `stream`.
    pub fn pool_alloc(&mut self, pool: Option<u64>, size: usize, stream: Handle) -> R<CUdeviceptr> {
        let ctx = self.stream_ctx(stream)?;
        let pool = match pool {
            Some(p) => p,
            None => match self.current_pool {
                Some(p) => p,
                None => self.default_pool(),
            },
        };
        let p = self.mem_alloc(ctx, size)?;
        if let Some(a) = self.allocs.get_mut(&p) {
            a.pool = Some(pool);
        }
        let used = self.pool_used(pool);
        if let Some(pl) = self.pools.get_mut(&pool) {
            for high in [ATTR_RESERVED_HIGH, ATTR_USED_HIGH] {
                pl.attrs[high] = pl.attrs[high].max(used);
            }
        }
        Ok(p)
    }
}

/// `cuDeviceGetDefaultMemPool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetDefaultMemPool(pool: *mut Handle, dev: CUdevice) -> CUresult {
    api(|| {
        if pool.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        if dev != 0 {
            return Err(CUDA_ERROR_INVALID_DEVICE);
        }
        let id = state::with(|st| Ok(st.default_pool()))?;
        // SAFETY: non-null and writable per cuda.h.
        unsafe { pool.write(handle(Kind::Pool, id)) };
        Ok(())
    })
}

/// `cuDeviceGetMemPool`: the current pool (the default one until set).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetMemPool(pool: *mut Handle, dev: CUdevice) -> CUresult {
    api(|| {
        if pool.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        if dev != 0 {
            return Err(CUDA_ERROR_INVALID_DEVICE);
        }
        let id = state::with(|st| {
            Ok(match st.current_pool {
                Some(p) => p,
                None => st.default_pool(),
            })
        })?;
        // SAFETY: non-null and writable per cuda.h.
        unsafe { pool.write(handle(Kind::Pool, id)) };
        Ok(())
    })
}

/// `cuDeviceSetMemPool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceSetMemPool(dev: CUdevice, pool: Handle) -> CUresult {
    api(|| {
        if dev != 0 {
            return Err(CUDA_ERROR_INVALID_DEVICE);
        }
        state::with(|st| {
            let id = st.pool(pool)?;
            st.current_pool = Some(id);
            Ok(())
        })
    })
}

/// `cuMemPoolCreate`: pinned device memory of device 0, no shareable
/// handles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemPoolCreate(pool: *mut Handle, props: *const PoolProps) -> CUresult {
    api(|| {
        if pool.is_null() || props.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        // SAFETY: non-null; cuda.h's contract makes it the properties.
        let p = unsafe { props.read_unaligned() };
        if p.alloc_type != CU_MEM_ALLOCATION_TYPE_PINNED
            || p.location_type != CU_MEM_LOCATION_TYPE_DEVICE
        {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        if p.location_id != 0 {
            return Err(CUDA_ERROR_INVALID_DEVICE);
        }
        if p.handle_types != 0 {
            return Err(CUDA_ERROR_NOT_SUPPORTED);
        }
        let id = state::with(|st| {
            let id = st.id();
            st.pools.insert(id, new_pool(false));
            Ok(id)
        })?;
        // SAFETY: non-null and writable per cuda.h.
        unsafe { pool.write(handle(Kind::Pool, id)) };
        Ok(())
    })
}

/// `cuMemPoolDestroy`: the default pool cannot be destroyed; allocations
/// still out stay valid until freed; a destroyed current pool gives way
/// to the default one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemPoolDestroy(pool: Handle) -> CUresult {
    api(|| {
        state::with(|st| {
            let id = st.pool(pool)?;
            if st.pools[&id].default {
                return Err(CUDA_ERROR_INVALID_VALUE);
            }
            st.pools.remove(&id);
            if st.current_pool == Some(id) {
                st.current_pool = None;
            }
            Ok(())
        })
    })
}

/// `cuMemPoolTrimTo`: nothing is kept beyond what is in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemPoolTrimTo(pool: Handle, _keep: usize) -> CUresult {
    api(|| state::with(|st| st.pool(pool).map(drop)))
}

/// `cuMemPoolSetAttribute`: the reuse flags and release threshold; the
/// high marks can be reset (to 0, which sets them to the current amount).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemPoolSetAttribute(
    pool: Handle,
    attr: c_int,
    value: *mut c_void,
) -> CUresult {
    api(|| {
        if value.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        state::with(|st| {
            let id = st.pool(pool)?;
            let used = st.pool_used(id);
            let a = st.pools.get_mut(&id).expect("live pool");
            match attr as usize {
                i @ 1..=3 => {
                    // SAFETY: an int for the reuse flags (cuda.h).
                    let v = unsafe { value.cast::<c_int>().read_unaligned() };
                    a.attrs[i] = u64::from(v != 0);
                }
                ATTR_RELEASE_THRESHOLD => {
                    // SAFETY: a cuuint64_t for the others (cuda.h).
                    let v = unsafe { value.cast::<u64>().read_unaligned() };
                    a.attrs[ATTR_RELEASE_THRESHOLD] = v;
                }
                i @ (ATTR_RESERVED_HIGH | ATTR_USED_HIGH) => {
                    // SAFETY: as above.
                    if unsafe { value.cast::<u64>().read_unaligned() } != 0 {
                        return Err(CUDA_ERROR_INVALID_VALUE);
                    }
                    a.attrs[i] = used;
                }
                _ => return Err(CUDA_ERROR_INVALID_VALUE),
            }
            Ok(())
        })
    })
}

/// `cuMemPoolGetAttribute`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemPoolGetAttribute(
    pool: Handle,
    attr: c_int,
    value: *mut c_void,
) -> CUresult {
    api(|| {
        if value.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let v = state::with(|st| {
            let id = st.pool(pool)?;
            let used = st.pool_used(id);
            let a = &st.pools[&id];
            Ok(match attr as usize {
                i @ (1..=4 | ATTR_RESERVED_HIGH | ATTR_USED_HIGH) => a.attrs[i],
                ATTR_RESERVED_CURRENT | ATTR_USED_CURRENT => used,
                _ => return Err(CUDA_ERROR_INVALID_VALUE),
            })
        })?;
        // SAFETY: non-null, an int or a cuuint64_t by attribute (cuda.h).
        unsafe {
            if (1..=3).contains(&attr) {
                value.cast::<c_int>().write_unaligned(v as c_int);
            } else {
                value.cast::<u64>().write_unaligned(v);
            }
        }
        Ok(())
    })
}

/// `cuMemAllocFromPoolAsync`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocFromPoolAsync(
    dptr: *mut CUdeviceptr,
    size: usize,
    pool: Handle,
    stream: Handle,
) -> CUresult {
    api(|| {
        if dptr.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let p = state::with(|st| {
            let id = st.pool(pool)?;
            st.pool_alloc(Some(id), size, stream)
        })?;
        // SAFETY: non-null and writable per cuda.h.
        unsafe { dptr.write(p) };
        Ok(())
    })
}
