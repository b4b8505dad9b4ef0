//! Unified, 2D and 3D copies (`cuMemcpy`, `cuMemcpy2D_v2`,
//! `cuMemcpy3D_v2` and their `Async` forms), made by the guest library:
//! each side is resolved to the guest's memory or the device's (a unified
//! address is the device's when the driver says so), host-to-host copies
//! are made here, and the device sides travel as boxes through the
//! `avaMemcpy3D*` calls, the guest's rows packed one after another.

use std::ffi::c_void;

use crate::cuda::{self, CUDA_MEMCPY2D, CUDA_MEMCPY3D, CUdeviceptr, CUresult, CUstream};

const CUDA_SUCCESS: CUresult = 0;
const CUDA_ERROR_INVALID_VALUE: CUresult = 1;
const CUDA_ERROR_OUT_OF_MEMORY: CUresult = 2;
const CUDA_ERROR_NOT_SUPPORTED: CUresult = 801;

const CU_MEMORYTYPE_HOST: u32 = 1;
const CU_MEMORYTYPE_DEVICE: u32 = 2;
const CU_MEMORYTYPE_ARRAY: u32 = 3;
const CU_MEMORYTYPE_UNIFIED: u32 = 4;

/// Where one side of a copy lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mem {
    /// The application's memory, at this address.
    Host(usize),
    /// Device memory, at this address.
    Device(CUdeviceptr),
}

/// Whether the driver knows `ptr` as device memory
/// (`CU_POINTER_ATTRIBUTE_MEMORY_TYPE`); page-locked memory of the guest
/// and addresses the driver does not know are host memory.
fn is_device(ptr: CUdeviceptr) -> bool {
    let mut kind = 0u32;
    // SAFETY: the output is a local of the attribute's size (4 bytes).
    let rc = unsafe {
        cuda::cuPointerGetAttribute(
            (&mut kind as *mut u32).cast(),
            cuda::CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
            ptr,
        )
    };
    rc == CUDA_SUCCESS && kind == CU_MEMORYTYPE_DEVICE
}

/// A unified address, resolved.
fn unified(ptr: CUdeviceptr) -> Mem {
    if is_device(ptr) {
        Mem::Device(ptr)
    } else {
        Mem::Host(ptr as usize)
    }
}

/// A side of a copy description: its memory type and the fields that go
/// with it.
fn side(kind: u32, host: u64, device: u64) -> Result<Mem, CUresult> {
    match kind {
        CU_MEMORYTYPE_HOST => Ok(Mem::Host(host as usize)),
        CU_MEMORYTYPE_DEVICE => Ok(Mem::Device(device)),
        CU_MEMORYTYPE_UNIFIED => Ok(unified(device)),
        CU_MEMORYTYPE_ARRAY => Err(CUDA_ERROR_NOT_SUPPORTED),
        _ => Err(CUDA_ERROR_INVALID_VALUE),
    }
}

/// One side of a box copy: where it starts (its offsets applied), its row
/// pitch and its rows per slice.
#[derive(Clone, Copy, Debug)]
struct Side {
    mem: Mem,
    pitch: usize,
    height: usize,
}

/// A box copy: `width` bytes by `height` rows by `depth` slices.
#[derive(Clone, Copy, Debug)]
struct Copy3D {
    src: Side,
    dst: Side,
    width: usize,
    height: usize,
    depth: usize,
}

/// The side at offsets (x, y, z) of `mem`.
fn at(
    mem: Mem,
    x: usize,
    y: usize,
    z: usize,
    pitch: usize,
    height: usize,
) -> Result<Side, CUresult> {
    let offset = z
        .checked_mul(height)
        .and_then(|r| r.checked_add(y))
        .and_then(|r| r.checked_mul(pitch))
        .and_then(|r| r.checked_add(x))
        .ok_or(CUDA_ERROR_INVALID_VALUE)?;
    let mem = match mem {
        Mem::Host(p) => Mem::Host(p.checked_add(offset).ok_or(CUDA_ERROR_INVALID_VALUE)?),
        Mem::Device(p) => Mem::Device(
            p.checked_add(offset as u64)
                .ok_or(CUDA_ERROR_INVALID_VALUE)?,
        ),
    };
    Ok(Side { mem, pitch, height })
}

impl Copy3D {
    /// Whether the rows and slices of each side are at least as long as
    /// the box's (the driver's rule for a box of more than one row).
    fn fits(&self) -> bool {
        let rows = self.height > 1 || self.depth > 1;
        let slices = self.depth > 1;
        [self.src, self.dst]
            .iter()
            .all(|s| (!rows || s.pitch >= self.width) && (!slices || s.height >= self.height))
    }

    /// The offset of row `row` of slice `slice` on `side`.
    fn row(side: &Side, slice: usize, row: usize) -> usize {
        (slice * side.height + row) * side.pitch
    }

    /// Makes the copy; with a stream, on it (host-side work waits for the
    /// stream's earlier work first).
    ///
    /// # Safety
    /// The host sides are the application's memory, valid for the box.
    unsafe fn run(&self, stream: Option<CUstream>) -> CUresult {
        if self.width == 0 || self.height == 0 || self.depth == 0 {
            return CUDA_SUCCESS;
        }
        if !self.fits() {
            return CUDA_ERROR_INVALID_VALUE;
        }
        let (w, h, d) = (self.width, self.height, self.depth);
        let Some(packed) = w.checked_mul(h).and_then(|n| n.checked_mul(d)) else {
            return CUDA_ERROR_INVALID_VALUE;
        };
        // The guest's bytes of a box with a device side, packed.
        let buffer = |zeroed: bool| {
            let mut v = Vec::new();
            v.try_reserve_exact(packed).ok()?;
            if zeroed {
                v.resize(packed, 0u8);
            }
            Some(v)
        };
        match (self.src.mem, self.dst.mem) {
            (Mem::Host(s), Mem::Host(t)) => {
                if let Some(stream) = stream {
                    // SAFETY: a stream handle of the application, passed on.
                    let rc = unsafe { cuda::cuStreamSynchronize(stream) };
                    if rc != CUDA_SUCCESS {
                        return rc;
                    }
                }
                for z in 0..d {
                    for y in 0..h {
                        // SAFETY: both sides hold the box (the caller's);
                        // `copy` allows overlap.
                        unsafe {
                            std::ptr::copy(
                                (s + Self::row(&self.src, z, y)) as *const u8,
                                (t + Self::row(&self.dst, z, y)) as *mut u8,
                                w,
                            )
                        };
                    }
                }
                CUDA_SUCCESS
            }
            (Mem::Host(s), Mem::Device(t)) => {
                let Some(mut bytes) = buffer(false) else {
                    return CUDA_ERROR_OUT_OF_MEMORY;
                };
                for z in 0..d {
                    for y in 0..h {
                        // SAFETY: the source holds the box (the caller's).
                        bytes.extend_from_slice(unsafe {
                            std::slice::from_raw_parts(
                                (s + Self::row(&self.src, z, y)) as *const u8,
                                w,
                            )
                        });
                    }
                }
                let src = bytes.as_ptr().cast::<c_void>();
                let (p, ht) = (self.dst.pitch, self.dst.height);
                // SAFETY: `bytes` holds the packed box, `w * h * d` bytes.
                unsafe {
                    match stream {
                        Some(st) => cuda::avaMemcpy3DHtoDAsync(t, p, ht, src, w, h, d, st),
                        None => cuda::avaMemcpy3DHtoD(t, p, ht, src, w, h, d),
                    }
                }
            }
            (Mem::Device(s), Mem::Host(t)) => {
                let Some(mut bytes) = buffer(true) else {
                    return CUDA_ERROR_OUT_OF_MEMORY;
                };
                let (st, on) = match stream {
                    Some(st) => (st, 1),
                    None => (std::ptr::null_mut(), 0),
                };
                // SAFETY: `bytes` has room for the packed box.
                let rc = unsafe {
                    cuda::avaMemcpy3DDtoH(
                        bytes.as_mut_ptr().cast(),
                        s,
                        self.src.pitch,
                        self.src.height,
                        w,
                        h,
                        d,
                        st,
                        on,
                    )
                };
                if rc != CUDA_SUCCESS {
                    return rc;
                }
                for (i, row) in bytes.chunks_exact(w).enumerate() {
                    let (z, y) = (i / h, i % h);
                    // SAFETY: the destination holds the box (the caller's).
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            row.as_ptr(),
                            (t + Self::row(&self.dst, z, y)) as *mut u8,
                            w,
                        )
                    };
                }
                CUDA_SUCCESS
            }
            (Mem::Device(s), Mem::Device(t)) => {
                let (dp, dh, sp, sh) = (
                    self.dst.pitch,
                    self.dst.height,
                    self.src.pitch,
                    self.src.height,
                );
                // SAFETY: no host memory is read.
                unsafe {
                    match stream {
                        Some(st) => cuda::avaMemcpy3DDtoDAsync(t, dp, dh, s, sp, sh, w, h, d, st),
                        None => cuda::avaMemcpy3DDtoD(t, dp, dh, s, sp, sh, w, h, d),
                    }
                }
            }
        }
    }
}

/// A 2D description as a box of one slice.
fn box_2d(c: &CUDA_MEMCPY2D) -> Result<Copy3D, CUresult> {
    let src = side(c.srcMemoryType, c.srcHost, c.srcDevice)?;
    let dst = side(c.dstMemoryType, c.dstHost, c.dstDevice)?;
    Ok(Copy3D {
        src: at(src, c.srcXInBytes, c.srcY, 0, c.srcPitch, c.Height)?,
        dst: at(dst, c.dstXInBytes, c.dstY, 0, c.dstPitch, c.Height)?,
        width: c.WidthInBytes,
        height: c.Height,
        depth: 1,
    })
}

/// A 3D description as a box (levels of detail belong to arrays).
fn box_3d(c: &CUDA_MEMCPY3D) -> Result<Copy3D, CUresult> {
    let src = side(c.srcMemoryType, c.srcHost, c.srcDevice)?;
    let dst = side(c.dstMemoryType, c.dstHost, c.dstDevice)?;
    Ok(Copy3D {
        src: at(src, c.srcXInBytes, c.srcY, c.srcZ, c.srcPitch, c.srcHeight)?,
        dst: at(dst, c.dstXInBytes, c.dstY, c.dstZ, c.dstPitch, c.dstHeight)?,
        width: c.WidthInBytes,
        height: c.Height,
        depth: c.Depth,
    })
}

/// A linear copy of `n` bytes between two unified addresses.
fn linear(dst: CUdeviceptr, src: CUdeviceptr, n: usize) -> Copy3D {
    let side = |p| Side {
        mem: unified(p),
        pitch: n,
        height: 1,
    };
    Copy3D {
        src: side(src),
        dst: side(dst),
        width: n,
        height: 1,
        depth: 1,
    }
}

/// `cuMemcpy`.
///
/// # Safety
/// As `cuMemcpy`'s: host addresses hold `n` bytes.
pub unsafe fn memcpy_unified(dst: CUdeviceptr, src: CUdeviceptr, n: usize) -> Option<CUresult> {
    // SAFETY: as the caller's.
    Some(unsafe { linear(dst, src, n).run(None) })
}

/// `cuMemcpyAsync`.
///
/// # Safety
/// As `cuMemcpyAsync`'s.
pub unsafe fn memcpy_unified_async(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    n: usize,
    stream: CUstream,
) -> Option<CUresult> {
    // SAFETY: as the caller's.
    Some(unsafe { linear(dst, src, n).run(Some(stream)) })
}

/// Reads the application's copy description.
///
/// # Safety
/// `p` is NULL or points to a `T`.
unsafe fn read<T: Copy>(p: *const T) -> Result<T, CUresult> {
    if p.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: non-NULL, and the application passes a description.
    Ok(unsafe { p.read_unaligned() })
}

/// Runs `copy` built from the description at `p`.
///
/// # Safety
/// As the copy functions': `p` is NULL or a description whose host sides
/// hold the box.
unsafe fn described<T: Copy>(
    p: *const T,
    build: fn(&T) -> Result<Copy3D, CUresult>,
    stream: Option<CUstream>,
) -> Option<CUresult> {
    // SAFETY: as the caller's.
    let copy = unsafe { read(p) }.and_then(|c| build(&c));
    Some(match copy {
        // SAFETY: as the caller's.
        Ok(c) => unsafe { c.run(stream) },
        Err(rc) => rc,
    })
}

/// `cuMemcpy2D_v2` and `cuMemcpy2DUnaligned_v2`.
///
/// # Safety
/// As `cuMemcpy2D_v2`'s.
pub unsafe fn memcpy_2d(p: *const CUDA_MEMCPY2D) -> Option<CUresult> {
    // SAFETY: as the caller's.
    unsafe { described(p, box_2d, None) }
}

/// `cuMemcpy2DAsync_v2`.
///
/// # Safety
/// As `cuMemcpy2DAsync_v2`'s.
pub unsafe fn memcpy_2d_async(p: *const CUDA_MEMCPY2D, stream: CUstream) -> Option<CUresult> {
    // SAFETY: as the caller's.
    unsafe { described(p, box_2d, Some(stream)) }
}

/// `cuMemcpy3D_v2`.
///
/// # Safety
/// As `cuMemcpy3D_v2`'s.
pub unsafe fn memcpy_3d(p: *const CUDA_MEMCPY3D) -> Option<CUresult> {
    // SAFETY: as the caller's.
    unsafe { described(p, box_3d, None) }
}

/// `cuMemcpy3DAsync_v2`.
///
/// # Safety
/// As `cuMemcpy3DAsync_v2`'s.
pub unsafe fn memcpy_3d_async(p: *const CUDA_MEMCPY3D, stream: CUstream) -> Option<CUresult> {
    // SAFETY: as the caller's.
    unsafe { described(p, box_3d, Some(stream)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_apply_pitch_and_rows_per_slice() {
        let s = at(Mem::Device(1000), 3, 2, 1, 64, 10).unwrap();
        assert_eq!(s.mem, Mem::Device(1000 + 3 + 2 * 64 + 10 * 64));
        assert!(at(Mem::Host(usize::MAX - 1), 5, 0, 0, 8, 1).is_err());
    }

    #[test]
    fn a_pitch_shorter_than_a_row_is_refused_for_more_than_one_row() {
        let side = |pitch, height| Side {
            mem: Mem::Device(256),
            pitch,
            height,
        };
        let c = |pitch, height, rows, depth| Copy3D {
            src: side(pitch, height),
            dst: side(64, 64),
            width: 32,
            height: rows,
            depth,
        };
        assert!(c(16, 1, 1, 1).fits(), "one row needs no pitch");
        assert!(!c(16, 1, 2, 1).fits());
        assert!(c(32, 1, 2, 1).fits());
        assert!(!c(32, 1, 2, 2).fits(), "slices need rows per slice");
        assert!(c(32, 2, 2, 2).fits());
    }
}
