//! Page-locked host memory, which in a VM is the guest's own memory: the
//! guest library allocates it (page-aligned) and records registered ranges,
//! so that frees, unregistrations and pointer attributes answer as the
//! driver's do. Copies from and to it travel like any others.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Mutex;

use crate::cuda::CUresult;

const CUDA_SUCCESS: CUresult = 0;
const CUDA_ERROR_INVALID_VALUE: CUresult = 1;
const CUDA_ERROR_OUT_OF_MEMORY: CUresult = 2;
const CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED: CUresult = 712;
const CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED: CUresult = 713;

/// A recorded range: its length and whether this library allocated it
/// (`cuMemAllocHost`) or the application registered it.
#[derive(Clone, Copy)]
struct Range {
    len: usize,
    allocated: bool,
}

/// The ranges, by start address.
static RANGES: Mutex<BTreeMap<usize, Range>> = Mutex::new(BTreeMap::new());

fn ranges() -> std::sync::MutexGuard<'static, BTreeMap<usize, Range>> {
    RANGES.lock().unwrap_or_else(|p| p.into_inner())
}

/// The recorded range holding `addr`: (start, length).
pub fn range_of(addr: usize) -> Option<(usize, usize)> {
    let r = ranges();
    let (&start, range) = r.range(..=addr).next_back()?;
    (addr < start + range.len).then_some((start, range.len))
}

/// `cuMemAllocHost` / `cuMemHostAlloc`: page-aligned memory of the guest.
///
/// # Safety
/// `pp` is NULL or writable.
pub unsafe fn alloc(pp: *mut *mut c_void, size: usize) -> CUresult {
    if pp.is_null() || size == 0 {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let mut p: *mut c_void = std::ptr::null_mut();
    // SAFETY: `p` is a local output; the alignment is a power of two and a
    // multiple of the pointer size.
    if unsafe { libc::posix_memalign(&mut p, 4096, size) } != 0 || p.is_null() {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    ranges().insert(
        p as usize,
        Range {
            len: size,
            allocated: true,
        },
    );
    // SAFETY: `pp` is not NULL (checked above).
    unsafe { *pp = p };
    CUDA_SUCCESS
}

/// `cuMemFreeHost`: only memory this library allocated.
///
/// # Safety
/// `p` is what [`alloc`] returned, or anything else (refused).
pub unsafe fn free(p: *mut c_void) -> CUresult {
    let mut r = ranges();
    match r.get(&(p as usize)) {
        Some(range) if range.allocated => {
            r.remove(&(p as usize));
            // SAFETY: `p` came from posix_memalign in `alloc` and is freed
            // once (its record is gone).
            unsafe { libc::free(p) };
            CUDA_SUCCESS
        }
        _ => CUDA_ERROR_INVALID_VALUE,
    }
}

/// `cuMemHostRegister`: records the range; one that overlaps a recorded
/// range is already registered.
pub fn register(addr: usize, size: usize) -> CUresult {
    if addr == 0 || size == 0 {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let mut r = ranges();
    let end = addr.saturating_add(size);
    let overlaps = r
        .range(..end)
        .next_back()
        .is_some_and(|(&s, range)| s + range.len > addr);
    if overlaps {
        return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
    }
    r.insert(
        addr,
        Range {
            len: size,
            allocated: false,
        },
    );
    CUDA_SUCCESS
}

/// `cuMemHostUnregister`: a range registered at `addr`.
pub fn unregister(addr: usize) -> CUresult {
    let mut r = ranges();
    match r.get(&addr) {
        Some(range) if !range.allocated => {
            r.remove(&addr);
            CUDA_SUCCESS
        }
        _ => CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_ranges_answer_as_the_driver() {
        let base = 0x7000_0000usize;
        assert_eq!(register(base, 4096), CUDA_SUCCESS);
        assert_eq!(
            register(base + 100, 10),
            CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED
        );
        assert_eq!(range_of(base + 4095), Some((base, 4096)));
        assert_eq!(range_of(base + 4096), None);
        assert_eq!(unregister(base + 1), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED);
        assert_eq!(unregister(base), CUDA_SUCCESS);
        assert_eq!(range_of(base), None);
    }

    #[test]
    fn allocations_are_freed_once() {
        let mut p = std::ptr::null_mut();
        // SAFETY: `p` is a local.
        assert_eq!(unsafe { alloc(&mut p, 100) }, CUDA_SUCCESS);
        assert_eq!(p as usize % 4096, 0);
        assert!(range_of(p as usize + 99).is_some());
        assert_eq!(
            unregister(p as usize),
            CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED
        );
        // SAFETY: `p` came from `alloc`.
        assert_eq!(unsafe { free(p) }, CUDA_SUCCESS);
        // SAFETY: a second free is refused before touching memory.
        assert_eq!(unsafe { free(p) }, CUDA_ERROR_INVALID_VALUE);
    }
}
