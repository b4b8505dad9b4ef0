//! Box copies (`avaMemcpy3D*` in `specs/cuda.lapis`): the device sides of
//! the guest's unified, 2D and 3D copies, made with the driver's
//! `cuMemcpy3D_v2` (or `cuMemcpy3DAsync_v2` on the guest's stream). The
//! guest's bytes arrive, or leave, packed row after row.

use std::ffi::c_void;

use remoting::worker::{CallCtx, DispatchError};

use crate::cuda::{Api, CUDA_MEMCPY3D, CUdeviceptr, CUresult, CUstream};

const CU_MEMORYTYPE_HOST: u32 = 1;
const CU_MEMORYTYPE_DEVICE: u32 = 2;

/// One side of a box copy.
enum Side {
    /// The guest's packed bytes (row pitch = the box's width).
    Host(*const c_void),
    /// Device memory: start, row pitch, rows per slice.
    Device(CUdeviceptr, usize, usize),
}

/// The number of device bytes a box spans from its start: every slice but
/// the last whole, the last slice's rows but its last whole, and one row.
pub fn span(pitch: usize, height: usize, w: usize, h: usize, d: usize) -> u64 {
    if w == 0 || h == 0 || d == 0 {
        return 0;
    }
    let (pitch, height) = (pitch as u128, height as u128);
    let rows = (h as u128 - 1) * pitch + w as u128;
    (d as u128 - 1)
        .checked_mul(pitch)
        .and_then(|s| s.checked_mul(height))
        .and_then(|s| s.checked_add(rows))
        .map_or(u64::MAX, |n| n.min(u64::MAX as u128) as u64)
}

/// Makes the copy of a `w` x `h` x `d` box from `src` to `dst`.
///
/// # Safety
/// A host side points to `w * h * d` bytes (readable for the source,
/// writable for the destination).
#[allow(clippy::too_many_arguments)]
unsafe fn copy(
    api: &Api,
    dst: Side,
    src: Side,
    w: usize,
    h: usize,
    d: usize,
    stream: Option<CUstream>,
) -> Result<CUresult, DispatchError> {
    // SAFETY: CUDA_MEMCPY3D is plain data; zero is every field's "none".
    let mut c: CUDA_MEMCPY3D = unsafe { std::mem::zeroed() };
    match src {
        Side::Host(p) => {
            c.srcMemoryType = CU_MEMORYTYPE_HOST;
            c.srcHost = p as u64;
            c.srcPitch = w;
            c.srcHeight = h;
        }
        Side::Device(p, pitch, height) => {
            c.srcMemoryType = CU_MEMORYTYPE_DEVICE;
            c.srcDevice = p;
            c.srcPitch = pitch;
            c.srcHeight = height;
        }
    }
    match dst {
        Side::Host(p) => {
            c.dstMemoryType = CU_MEMORYTYPE_HOST;
            c.dstHost = p as u64;
            c.dstPitch = w;
            c.dstHeight = h;
        }
        Side::Device(p, pitch, height) => {
            c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
            c.dstDevice = p;
            c.dstPitch = pitch;
            c.dstHeight = height;
        }
    }
    c.WidthInBytes = w;
    c.Height = h;
    c.Depth = d;
    Ok(match stream {
        Some(s) => {
            let f = api
                .cuMemcpy3DAsync_v2
                .ok_or(DispatchError::Unavailable("cuMemcpy3DAsync_v2"))?;
            // SAFETY: `c` describes memory of the caller's contract.
            unsafe { f(&c, s) }
        }
        None => {
            let f = api
                .cuMemcpy3D_v2
                .ok_or(DispatchError::Unavailable("cuMemcpy3D_v2"))?;
            // SAFETY: as above.
            unsafe { f(&c) }
        }
    })
}

/// `avaMemcpy3DHtoD`.
///
/// # Safety
/// `src` holds `w * h * d` bytes (checked by the dispatcher).
#[allow(clippy::too_many_arguments)]
pub unsafe fn memcpy_box_htod(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    dst: CUdeviceptr,
    pitch: usize,
    height: usize,
    src: *const c_void,
    w: usize,
    h: usize,
    d: usize,
) -> Result<CUresult, DispatchError> {
    // SAFETY: as the caller's.
    unsafe {
        copy(
            api,
            Side::Device(dst, pitch, height),
            Side::Host(src),
            w,
            h,
            d,
            None,
        )
    }
}

/// `avaMemcpy3DHtoDAsync`: the driver takes the source before it returns
/// (pageable memory).
///
/// # Safety
/// As [`memcpy_box_htod`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn memcpy_box_htod_async(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    dst: CUdeviceptr,
    pitch: usize,
    height: usize,
    src: *const c_void,
    w: usize,
    h: usize,
    d: usize,
    stream: CUstream,
) -> Result<CUresult, DispatchError> {
    let dst = Side::Device(dst, pitch, height);
    // SAFETY: as the caller's.
    unsafe { copy(api, dst, Side::Host(src), w, h, d, Some(stream)) }
}

/// `avaMemcpy3DDtoH`: returns once the bytes are in `dst` (pageable
/// memory), on the stream when `on_stream` is set.
///
/// # Safety
/// `dst` holds `w * h * d` writable bytes (checked by the dispatcher).
#[allow(clippy::too_many_arguments)]
pub unsafe fn memcpy_box_dtoh(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    dst: *mut c_void,
    src: CUdeviceptr,
    pitch: usize,
    height: usize,
    w: usize,
    h: usize,
    d: usize,
    stream: CUstream,
    on_stream: u32,
) -> Result<CUresult, DispatchError> {
    let src = Side::Device(src, pitch, height);
    let stream = (on_stream != 0).then_some(stream);
    // SAFETY: as the caller's.
    unsafe { copy(api, Side::Host(dst.cast_const()), src, w, h, d, stream) }
}

/// `avaMemcpy3DDtoD`.
///
/// # Safety
/// None: no host memory is touched.
#[allow(clippy::too_many_arguments)]
pub unsafe fn memcpy_box_dtod(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    dst: CUdeviceptr,
    dst_pitch: usize,
    dst_height: usize,
    src: CUdeviceptr,
    src_pitch: usize,
    src_height: usize,
    w: usize,
    h: usize,
    d: usize,
) -> Result<CUresult, DispatchError> {
    let dst = Side::Device(dst, dst_pitch, dst_height);
    let src = Side::Device(src, src_pitch, src_height);
    // SAFETY: both sides are device memory.
    unsafe { copy(api, dst, src, w, h, d, None) }
}

/// `avaMemcpy3DDtoDAsync`.
///
/// # Safety
/// None: no host memory is touched.
#[allow(clippy::too_many_arguments)]
pub unsafe fn memcpy_box_dtod_async(
    api: &Api,
    _cx: &mut CallCtx<'_>,
    dst: CUdeviceptr,
    dst_pitch: usize,
    dst_height: usize,
    src: CUdeviceptr,
    src_pitch: usize,
    src_height: usize,
    w: usize,
    h: usize,
    d: usize,
    stream: CUstream,
) -> Result<CUresult, DispatchError> {
    let dst = Side::Device(dst, dst_pitch, dst_height);
    let src = Side::Device(src, src_pitch, src_height);
    // SAFETY: both sides are device memory.
    unsafe { copy(api, dst, src, w, h, d, Some(stream)) }
}

#[cfg(test)]
mod tests {
    use super::span;

    #[test]
    fn a_box_spans_its_last_row_only_to_its_width() {
        assert_eq!(span(64, 10, 16, 1, 1), 16);
        assert_eq!(span(64, 10, 16, 3, 1), 2 * 64 + 16);
        assert_eq!(span(64, 10, 16, 3, 2), 640 + 2 * 64 + 16);
        assert_eq!(span(64, 10, 0, 3, 2), 0);
        assert_eq!(span(usize::MAX, usize::MAX, 1, 2, 2), u64::MAX);
        assert_eq!(span(usize::MAX, usize::MAX, 1, 2, usize::MAX), u64::MAX);
    }
}
