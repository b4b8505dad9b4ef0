//! Unified, 2D and 3D copies: `cuMemcpy`, `cuMemcpyAsync`,
//! `cuMemcpy2D_v2`, `cuMemcpy2DUnaligned_v2`, `cuMemcpy2DAsync_v2`,
//! `cuMemcpy3D_v2` and `cuMemcpy3DAsync_v2`, between host memory and
//! device memory (CUDA arrays are not supported). A unified address is
//! device memory when it lies in an allocation. Stream work runs when it
//! is enqueued, so the async forms copy at once.
#![allow(clippy::missing_safety_doc)]

use std::ffi::c_void;

use crate::errors::*;
use crate::state::{self, R, State};
use crate::{CUdeviceptr, CUresult, Handle};

/// `CUDA_MEMCPY2D` of cuda.h (its fields, in its order).
#[allow(missing_docs)]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Memcpy2D {
    pub src_x_in_bytes: usize,
    pub src_y: usize,
    pub src_memory_type: u32,
    pub src_host: *const c_void,
    pub src_device: CUdeviceptr,
    pub src_array: *mut c_void,
    pub src_pitch: usize,
    pub dst_x_in_bytes: usize,
    pub dst_y: usize,
    pub dst_memory_type: u32,
    pub dst_host: *mut c_void,
    pub dst_device: CUdeviceptr,
    pub dst_array: *mut c_void,
    pub dst_pitch: usize,
    pub width_in_bytes: usize,
    pub height: usize,
}

/// `CUDA_MEMCPY3D` of cuda.h (its fields, in its order).
#[allow(missing_docs)]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Memcpy3D {
    pub src_x_in_bytes: usize,
    pub src_y: usize,
    pub src_z: usize,
    pub src_lod: usize,
    pub src_memory_type: u32,
    pub src_host: *const c_void,
    pub src_device: CUdeviceptr,
    pub src_array: *mut c_void,
    pub reserved0: *mut c_void,
    pub src_pitch: usize,
    pub src_height: usize,
    pub dst_x_in_bytes: usize,
    pub dst_y: usize,
    pub dst_z: usize,
    pub dst_lod: usize,
    pub dst_memory_type: u32,
    pub dst_host: *mut c_void,
    pub dst_device: CUdeviceptr,
    pub dst_array: *mut c_void,
    pub reserved1: *mut c_void,
    pub dst_pitch: usize,
    pub dst_height: usize,
    pub width_in_bytes: usize,
    pub height: usize,
    pub depth: usize,
}

/// One side of a copy: host or device memory at an address, with its row
/// pitch and rows per slice.
#[derive(Clone, Copy)]
struct Side {
    device: bool,
    addr: u64,
    pitch: usize,
    height: usize,
}

impl Side {
    /// The side of memory type `kind` (host, device or unified) at offsets
    /// (x, y, z).
    fn new(
        st: &State,
        kind: u32,
        host: u64,
        device: u64,
        (x, y, z): (usize, usize, usize),
        pitch: usize,
        height: usize,
    ) -> R<Side> {
        let (device, base) = match kind {
            1 => (false, host),
            2 => (true, device),
            3 => return Err(CUDA_ERROR_NOT_SUPPORTED),
            4 => (st.alloc_at(device).is_some(), device),
            _ => return Err(CUDA_ERROR_INVALID_VALUE),
        };
        let addr = (z as u128)
            .checked_mul(height as u128)
            .and_then(|r| r.checked_add(y as u128))
            .and_then(|r| r.checked_mul(pitch as u128))
            .and_then(|r| r.checked_add(x as u128 + base as u128))
            .and_then(|a| u64::try_from(a).ok())
            .ok_or(CUDA_ERROR_INVALID_VALUE)?;
        Ok(Side {
            device,
            addr,
            pitch,
            height,
        })
    }

    /// The address of row `y` of slice `z`.
    fn row(&self, z: usize, y: usize) -> R<u64> {
        (z as u128 * self.height as u128 + y as u128)
            .checked_mul(self.pitch as u128)
            .and_then(|o| o.checked_add(self.addr as u128))
            .and_then(|a| u64::try_from(a).ok())
            .ok_or(CUDA_ERROR_INVALID_VALUE)
    }
}

/// Copies a `w` x `h` x `d` box, row by row.
///
/// # Safety
/// Host sides hold the box.
unsafe fn copy_box(
    st: &mut State,
    src: Side,
    dst: Side,
    (w, h, d): (usize, usize, usize),
) -> R<()> {
    if w == 0 || h == 0 || d == 0 {
        return Ok(());
    }
    let rows = h > 1 || d > 1;
    for s in [&src, &dst] {
        if (rows && s.pitch < w) || (d > 1 && s.height < h) {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
    }
    for z in 0..d {
        for y in 0..h {
            let (from, to) = (src.row(z, y)?, dst.row(z, y)?);
            match (src.device, dst.device) {
                (true, true) => {
                    let s = st.range(from, w)?;
                    let t = st.range(to, w)?;
                    st.mem.copy_within(s..s + w, t);
                }
                (true, false) => {
                    let s = st.range(from, w)?;
                    // SAFETY: the destination row holds `w` bytes (caller).
                    unsafe {
                        std::ptr::copy_nonoverlapping(st.mem[s..].as_ptr(), to as *mut u8, w)
                    };
                }
                (false, true) => {
                    let t = st.range(to, w)?;
                    // SAFETY: the source row holds `w` bytes (caller).
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            from as *const u8,
                            st.mem[t..].as_mut_ptr(),
                            w,
                        )
                    };
                }
                (false, false) => {
                    // SAFETY: both rows hold `w` bytes (caller); `copy`
                    // allows overlap.
                    unsafe { std::ptr::copy(from as *const u8, to as *mut u8, w) };
                }
            }
        }
    }
    Ok(())
}

fn linear(dst: CUdeviceptr, src: CUdeviceptr, n: usize, stream: Handle) -> R<()> {
    state::with(|st| {
        st.stream_ctx(stream)?;
        let s = Side::new(st, 4, 0, src, (0, 0, 0), n, 1)?;
        let t = Side::new(st, 4, 0, dst, (0, 0, 0), n, 1)?;
        // SAFETY: host addresses hold `n` bytes (cuda.h).
        unsafe { copy_box(st, s, t, (n, 1, 1)) }
    })
}

/// A 2D description as the 3D description of a box of one slice.
fn as_3d(c: &Memcpy2D) -> Memcpy3D {
    Memcpy3D {
        src_x_in_bytes: c.src_x_in_bytes,
        src_y: c.src_y,
        src_z: 0,
        src_lod: 0,
        src_memory_type: c.src_memory_type,
        src_host: c.src_host,
        src_device: c.src_device,
        src_array: c.src_array,
        reserved0: std::ptr::null_mut(),
        src_pitch: c.src_pitch,
        src_height: c.height,
        dst_x_in_bytes: c.dst_x_in_bytes,
        dst_y: c.dst_y,
        dst_z: 0,
        dst_lod: 0,
        dst_memory_type: c.dst_memory_type,
        dst_host: c.dst_host,
        dst_device: c.dst_device,
        dst_array: c.dst_array,
        reserved1: std::ptr::null_mut(),
        dst_pitch: c.dst_pitch,
        dst_height: c.height,
        width_in_bytes: c.width_in_bytes,
        height: c.height,
        depth: 1,
    }
}

fn copy_2d(p: *const Memcpy2D, stream: Handle) -> R<()> {
    if p.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: non-null; cuda.h's contract makes it a description.
    let c = as_3d(&unsafe { p.read_unaligned() });
    copy_3d(&c, stream)
}

fn copy_3d(p: *const Memcpy3D, stream: Handle) -> R<()> {
    if p.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: non-null; cuda.h's contract makes it a description.
    let c = unsafe { p.read_unaligned() };
    state::with(|st| {
        st.stream_ctx(stream)?;
        let s = Side::new(
            st,
            c.src_memory_type,
            c.src_host as u64,
            c.src_device,
            (c.src_x_in_bytes, c.src_y, c.src_z),
            c.src_pitch,
            c.src_height,
        )?;
        let t = Side::new(
            st,
            c.dst_memory_type,
            c.dst_host as u64,
            c.dst_device,
            (c.dst_x_in_bytes, c.dst_y, c.dst_z),
            c.dst_pitch,
            c.dst_height,
        )?;
        // SAFETY: host sides hold the box (cuda.h).
        unsafe { copy_box(st, s, t, (c.width_in_bytes, c.height, c.depth)) }
    })
}

fn api(f: impl FnOnce() -> R<()>) -> CUresult {
    crate::api::api(f)
}

/// `cuMemcpy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpy(dst: CUdeviceptr, src: CUdeviceptr, n: usize) -> CUresult {
    api(|| linear(dst, src, n, std::ptr::null_mut()))
}

/// `cuMemcpyAsync`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyAsync(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    n: usize,
    stream: Handle,
) -> CUresult {
    api(|| linear(dst, src, n, stream))
}

/// `cuMemcpy2D_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpy2D_v2(p: *const Memcpy2D) -> CUresult {
    api(|| copy_2d(p, std::ptr::null_mut()))
}

/// `cuMemcpy2DUnaligned_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpy2DUnaligned_v2(p: *const Memcpy2D) -> CUresult {
    api(|| copy_2d(p, std::ptr::null_mut()))
}

/// `cuMemcpy2DAsync_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpy2DAsync_v2(p: *const Memcpy2D, stream: Handle) -> CUresult {
    api(|| copy_2d(p, stream))
}

/// `cuMemcpy3D_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpy3D_v2(p: *const Memcpy3D) -> CUresult {
    api(|| copy_3d(p, std::ptr::null_mut()))
}

/// `cuMemcpy3DAsync_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpy3DAsync_v2(p: *const Memcpy3D, stream: Handle) -> CUresult {
    api(|| copy_3d(p, stream))
}
