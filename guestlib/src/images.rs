//! `clCreateImage` with host data (`CL_MEM_COPY_HOST_PTR` or
//! `CL_MEM_USE_HOST_PTR`). How many bytes the host pointer holds depends
//! on the element size of the image format, which a specification
//! expression cannot compute: the guest library computes it here, creates
//! the image without host data, and writes the data through a queue of its
//! own on the context's first device (finished and released before the
//! image is returned). The flags and host pointer the application gave are
//! recorded, so `clGetMemObjectInfo` answers as native does. With
//! `CL_MEM_USE_HOST_PTR` the image keeps its own copy: later changes to the
//! application's memory do not reach it (as with a device that caches the
//! host memory), and mapping writes back through the guest library.

use crate::opencl::{self, cl_int, cl_mem};

const CL_INVALID_HOST_PTR: cl_int = -37;

/// Bytes of one element of an image of this format; `None` for an order
/// or a type this library does not know (the driver then answers).
fn element_size(format: &opencl::cl_image_format) -> Option<usize> {
    let channels = match format.image_channel_order {
        0x10B0 | 0x10B1 | 0x10B8 | 0x10B9 | 0x10BA | 0x10BD => 1, // R A INTENSITY LUMINANCE Rx DEPTH
        0x10B2 | 0x10B3 | 0x10BB | 0x10BE => 2,                   // RG RA RGx DEPTH_STENCIL
        0x10B4 | 0x10BF => 3,                                     // RGB sRGB
        0x10B5..=0x10B7 | 0x10BC | 0x10C0..=0x10C3 => 4,          // RGBA BGRA ARGB RGBx sRGB* ABGR
        _ => return None,
    };
    let size = match format.image_channel_data_type {
        0x10D4 | 0x10D5 => return Some(2), // UNORM_SHORT_565/555: packed
        0x10D6 | 0x10DF | 0x10E0 => return Some(4), // UNORM_INT_101010, INT24, 101010_2
        0x10D0 | 0x10D2 | 0x10D7 | 0x10DA => 1, // 8-bit
        0x10D1 | 0x10D3 | 0x10D8 | 0x10DB | 0x10DD => 2, // 16-bit, half
        0x10D9 | 0x10DC | 0x10DE => 4,     // 32-bit, float
        _ => return None,
    };
    Some(channels * size)
}

/// The region to write and the pitches of the host data, for `desc`.
fn region_of(desc: &opencl::cl_image_desc, elem: usize) -> Option<([usize; 3], usize, usize)> {
    let (w, h, d, n) = (
        desc.image_width,
        desc.image_height,
        desc.image_depth,
        desc.image_array_size,
    );
    let row = if desc.image_row_pitch == 0 {
        w * elem
    } else {
        desc.image_row_pitch
    };
    let (region, slice) = match desc.image_type {
        0x10F4 | 0x10F6 => ([w, 1, 1], 0),             // 1D, 1D buffer
        0x10F1 => ([w, h, 1], 0),                      // 2D
        0x10F5 => ([w, n, 1], desc.image_slice_pitch), // 1D array
        0x10F3 => ([w, h, n], desc.image_slice_pitch), // 2D array
        0x10F2 => ([w, h, d], desc.image_slice_pitch), // 3D
        _ => return None,
    };
    Some((region, row, slice))
}

/// `clCreateImage`: see the module documentation. `None`: no host data,
/// the ordinary call is made.
///
/// # Safety
/// OpenCL's contract: `image_format` and `image_desc` are NULL or valid;
/// `host_ptr` is NULL or holds the image's data; `errcode_ret` is NULL or
/// writable.
pub unsafe fn create_image(
    context: opencl::cl_context,
    flags: opencl::cl_mem_flags,
    image_format: *const opencl::cl_image_format,
    image_desc: *const opencl::cl_image_desc,
    host_ptr: *mut std::ffi::c_void,
    errcode_ret: *mut cl_int,
) -> Option<cl_mem> {
    let create = |plain, err: &mut cl_int| {
        // SAFETY: the application's format and description, no host data;
        // `err` is a live local.
        unsafe {
            opencl::clCreateImage(
                context,
                plain,
                image_format,
                image_desc,
                std::ptr::null_mut(),
                err,
            )
        }
    };
    // SAFETY: the caller's arguments, passed on.
    unsafe {
        create_with_data(
            context,
            flags,
            image_format,
            image_desc,
            host_ptr,
            errcode_ret,
            create,
        )
    }
}

/// `clCreateImageWithProperties`: as [`create_image`].
///
/// # Safety
/// As for [`create_image`]; `properties` is NULL or a zero-terminated list.
#[allow(clippy::too_many_arguments)]
pub unsafe fn create_image_with_properties(
    context: opencl::cl_context,
    properties: *const opencl::cl_mem_properties,
    flags: opencl::cl_mem_flags,
    image_format: *const opencl::cl_image_format,
    image_desc: *const opencl::cl_image_desc,
    host_ptr: *mut std::ffi::c_void,
    errcode_ret: *mut cl_int,
) -> Option<cl_mem> {
    let create = |plain, err: &mut cl_int| {
        // SAFETY: as in `create_image`, with the application's properties.
        unsafe {
            opencl::clCreateImageWithProperties(
                context,
                properties,
                plain,
                image_format,
                image_desc,
                std::ptr::null_mut(),
                err,
            )
        }
    };
    // SAFETY: the caller's arguments, passed on.
    unsafe {
        create_with_data(
            context,
            flags,
            image_format,
            image_desc,
            host_ptr,
            errcode_ret,
            create,
        )
    }
}

/// A description of a 2D or 3D image made with the OpenCL 1.1 calls.
fn legacy_desc(
    image_type: opencl::cl_mem_object_type,
    [width, height, depth]: [usize; 3],
    row_pitch: usize,
    slice_pitch: usize,
) -> opencl::cl_image_desc {
    opencl::cl_image_desc {
        image_type,
        image_width: width,
        image_height: height,
        image_depth: depth,
        image_array_size: 0,
        image_row_pitch: row_pitch,
        image_slice_pitch: slice_pitch,
        num_mip_levels: 0,
        num_samples: 0,
        buffer: std::ptr::null_mut(),
    }
}

/// `clCreateImage2D` (OpenCL 1.1): as [`create_image`], so that host data
/// with a row pitch of 0 (computed from the format's element size) is
/// given, and the flags and host pointer answered are the application's.
///
/// # Safety
/// OpenCL's contract for `clCreateImage2D`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn create_image_2d(
    context: opencl::cl_context,
    flags: opencl::cl_mem_flags,
    image_format: *const opencl::cl_image_format,
    image_width: usize,
    image_height: usize,
    image_row_pitch: usize,
    host_ptr: *mut std::ffi::c_void,
    errcode_ret: *mut cl_int,
) -> Option<cl_mem> {
    let desc = legacy_desc(
        opencl::CL_MEM_OBJECT_IMAGE2D,
        [image_width, image_height, 0],
        image_row_pitch,
        0,
    );
    // A pitch goes with host data only: the image is made without it.
    let pitch = if host_ptr.is_null() {
        image_row_pitch
    } else {
        0
    };
    let create = |plain, err: &mut cl_int| {
        // SAFETY: the application's format and sizes, no host data; `err`
        // is a live local.
        unsafe {
            opencl::clCreateImage2D(
                context,
                plain,
                image_format,
                image_width,
                image_height,
                pitch,
                std::ptr::null_mut(),
                err,
            )
        }
    };
    // SAFETY: the caller's arguments, with a description of them.
    unsafe {
        create_with_data(
            context,
            flags,
            image_format,
            &desc,
            host_ptr,
            errcode_ret,
            create,
        )
    }
}

/// `clCreateImage3D` (OpenCL 1.1): as [`create_image_2d`].
///
/// # Safety
/// OpenCL's contract for `clCreateImage3D`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn create_image_3d(
    context: opencl::cl_context,
    flags: opencl::cl_mem_flags,
    image_format: *const opencl::cl_image_format,
    image_width: usize,
    image_height: usize,
    image_depth: usize,
    image_row_pitch: usize,
    image_slice_pitch: usize,
    host_ptr: *mut std::ffi::c_void,
    errcode_ret: *mut cl_int,
) -> Option<cl_mem> {
    let desc = legacy_desc(
        opencl::CL_MEM_OBJECT_IMAGE3D,
        [image_width, image_height, image_depth],
        image_row_pitch,
        image_slice_pitch,
    );
    let (row, slice) = if host_ptr.is_null() {
        (image_row_pitch, image_slice_pitch)
    } else {
        (0, 0)
    };
    let create = |plain, err: &mut cl_int| {
        // SAFETY: as in `create_image_2d`.
        unsafe {
            opencl::clCreateImage3D(
                context,
                plain,
                image_format,
                image_width,
                image_height,
                image_depth,
                row,
                slice,
                std::ptr::null_mut(),
                err,
            )
        }
    };
    // SAFETY: the caller's arguments, with a description of them.
    unsafe {
        create_with_data(
            context,
            flags,
            image_format,
            &desc,
            host_ptr,
            errcode_ret,
            create,
        )
    }
}

/// The image made by `create(flags without host data, &mut err)`, then
/// filled with the host data: see the module documentation.
///
/// # Safety
/// As for [`create_image`].
unsafe fn create_with_data(
    context: opencl::cl_context,
    flags: opencl::cl_mem_flags,
    image_format: *const opencl::cl_image_format,
    image_desc: *const opencl::cl_image_desc,
    host_ptr: *mut std::ffi::c_void,
    errcode_ret: *mut cl_int,
    create: impl FnOnce(opencl::cl_mem_flags, &mut cl_int) -> cl_mem,
) -> Option<cl_mem> {
    if crate::recorded::passing() {
        return None;
    }
    if host_ptr.is_null() {
        // No host data: made as it is, and recorded, so that the flags and
        // host pointer answered are the application's (an image over a
        // buffer in the heap would answer the worker's otherwise).
        let mut err = 0;
        let image = crate::recorded::passing_through(|| create(flags, &mut err));
        crate::recorded::record(image, flags, host_ptr);
        if !errcode_ret.is_null() {
            // SAFETY: the caller's contract.
            unsafe { *errcode_ret = err };
        }
        return Some(image);
    }
    let fail = |rc: cl_int| {
        if !errcode_ret.is_null() {
            // SAFETY: the caller's contract.
            unsafe { *errcode_ret = rc };
        }
        Some(std::ptr::null_mut())
    };
    let data = opencl::CL_MEM_COPY_HOST_PTR | opencl::CL_MEM_USE_HOST_PTR;
    if flags & data == 0 {
        // Host data without a flag that uses it: the driver's answer.
        return fail(CL_INVALID_HOST_PTR);
    }
    if image_format.is_null() || image_desc.is_null() {
        return None;
    }
    // SAFETY: the caller's contract: both point to their structs.
    let (format, desc) = unsafe { (image_format.read_unaligned(), image_desc.read_unaligned()) };
    let (Some(elem), Some(_)) = (element_size(&format), region_of(&desc, 1)) else {
        return None;
    };
    let (region, row, slice) = region_of(&desc, elem)?;
    let mut err = 0;
    let plain = flags & !data;
    let image = crate::recorded::passing_through(|| create(plain, &mut err));
    if image.is_null() {
        return fail(err);
    }
    let rc = crate::fast_paths::on_own_queue(context, |queue| {
        let origin = [0usize; 3];
        // SAFETY: `host_ptr` holds the image's data with these pitches (the
        // caller's contract); origin and region are locals.
        unsafe {
            opencl::clEnqueueWriteImage(
                queue,
                image,
                1,
                origin.as_ptr(),
                region.as_ptr(),
                row,
                slice,
                host_ptr,
                0,
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        }
    });
    if rc != opencl::CL_SUCCESS {
        // SAFETY: the image made here, never returned.
        unsafe { opencl::clReleaseMemObject(image) };
        return fail(rc);
    }
    crate::recorded::record(image, flags, host_ptr);
    if !errcode_ret.is_null() {
        // SAFETY: the caller's contract.
        unsafe { *errcode_ret = opencl::CL_SUCCESS };
    }
    Some(image)
}

/// An image's `size_t` property (`CL_IMAGE_ELEMENT_SIZE`, its pitches);
/// `None` when the driver does not answer.
pub(crate) fn image_info(image: cl_mem, param: opencl::cl_image_info) -> Option<usize> {
    let mut v = 0usize;
    // SAFETY: a live local of the size passed; `image` is the caller's.
    let rc = unsafe {
        opencl::clGetImageInfo(
            image,
            param,
            size_of::<usize>(),
            (&mut v as *mut usize).cast(),
            std::ptr::null_mut(),
        )
    };
    (rc == opencl::CL_SUCCESS).then_some(v)
}

/// Explicit host pitches for a read or write of `region` of `image` given
/// with a row pitch of 0 (which the driver computes from the image's
/// element size): `(row, slice)`, or `None` when the call's own pitches
/// are used (or the image cannot be asked).
fn host_pitches(
    image: cl_mem,
    region: *const usize,
    row: usize,
    slice: usize,
) -> Option<(usize, usize)> {
    if row != 0 || region.is_null() || image.is_null() {
        return None;
    }
    // SAFETY: OpenCL's contract: `region` holds three sizes.
    let region = unsafe { std::slice::from_raw_parts(region, 3) };
    let elem = image_info(image, opencl::CL_IMAGE_ELEMENT_SIZE)?;
    let (_, kind) = crate::checks::mem_facts(image)?;
    if elem == 0 {
        return None;
    }
    let row = region[0] * elem;
    let slice = match kind {
        opencl::CL_MEM_OBJECT_IMAGE1D_ARRAY if slice == 0 => row,
        opencl::CL_MEM_OBJECT_IMAGE3D | opencl::CL_MEM_OBJECT_IMAGE2D_ARRAY if slice == 0 => {
            row * region[1]
        }
        _ => slice,
    };
    Some((row, slice))
}

/// A read or write of a region with one layer (`region[2] == 1`) and a
/// slice pitch larger than its row pitch, which the remoted call cannot
/// size: made with a slice pitch of 0, which a single layer does not use
/// (PoCL steps from one image of a 1D array to the next by the row pitch,
/// as it steps rows). `None`: not such a call.
fn one_layer(
    region: *const usize,
    row: usize,
    slice: usize,
    call: impl FnOnce(usize, usize) -> cl_int,
) -> Option<cl_int> {
    if row == 0 || region.is_null() || slice <= row {
        return None;
    }
    // SAFETY: OpenCL's contract: three sizes.
    let layers = unsafe { *region.add(2) };
    (layers == 1).then(|| call(row, 0))
}

/// `clEnqueueReadImage` with a row pitch of 0: made with the pitches the
/// driver would compute, so that the remoted call knows how many bytes
/// come back. `None`: the call's pitches are used as given.
///
/// # Safety
/// OpenCL's contract for `clEnqueueReadImage`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn read_image(
    queue: opencl::cl_command_queue,
    image: cl_mem,
    blocking: opencl::cl_bool,
    origin: *const usize,
    region: *const usize,
    row_pitch: usize,
    slice_pitch: usize,
    ptr: *mut std::ffi::c_void,
    n: opencl::cl_uint,
    wait: *const opencl::cl_event,
    event: *mut opencl::cl_event,
) -> Option<cl_int> {
    if crate::recorded::passing() {
        return None;
    }
    if let Some(e) = crate::checks::not_an_image(image) {
        return Some(e);
    }
    if ptr.is_null() {
        return Some(opencl::CL_INVALID_VALUE);
    }
    let read = |row, slice| {
        // SAFETY: the caller's arguments, with the pitches given.
        crate::recorded::passing_through(|| unsafe {
            opencl::clEnqueueReadImage(
                queue, image, blocking, origin, region, row, slice, ptr, n, wait, event,
            )
        })
    };
    if let Some(rc) = one_layer(region, row_pitch, slice_pitch, read) {
        return Some(rc);
    }
    let (row, slice) = host_pitches(image, region, row_pitch, slice_pitch)?;
    Some(read(row, slice))
}

/// `clEnqueueWriteImage` with a row pitch of 0: as [`read_image`].
///
/// # Safety
/// OpenCL's contract for `clEnqueueWriteImage`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn write_image(
    queue: opencl::cl_command_queue,
    image: cl_mem,
    blocking: opencl::cl_bool,
    origin: *const usize,
    region: *const usize,
    row_pitch: usize,
    slice_pitch: usize,
    ptr: *const std::ffi::c_void,
    n: opencl::cl_uint,
    wait: *const opencl::cl_event,
    event: *mut opencl::cl_event,
) -> Option<cl_int> {
    if crate::recorded::passing() {
        return None;
    }
    if let Some(e) = crate::checks::not_an_image(image) {
        return Some(e);
    }
    if ptr.is_null() {
        return Some(opencl::CL_INVALID_VALUE);
    }
    let write = |row, slice| {
        // SAFETY: as in `read_image`.
        crate::recorded::passing_through(|| unsafe {
            opencl::clEnqueueWriteImage(
                queue, image, blocking, origin, region, row, slice, ptr, n, wait, event,
            )
        })
    };
    if let Some(rc) = one_layer(region, row_pitch, slice_pitch, write) {
        return Some(rc);
    }
    let (row, slice) = host_pitches(image, region, row_pitch, slice_pitch)?;
    Some(write(row, slice))
}
