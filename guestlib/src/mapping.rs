//! `clEnqueueMapBuffer`, `clEnqueueMapImage` and `clEnqueueUnmapMemObject`,
//! made by the guest library itself: the application gets a pointer it can
//! read and write, which the worker's memory cannot be.
//!
//! - A buffer in the region's heap, mapped with no events, is mapped in
//!   place: the worker says where its bytes are once its queue has
//!   finished (`avaBufferAccess`), and the pointer points into the heap; the
//!   unmap has nothing to copy.
//! - Any other mapping is memory of the guest library's (page-aligned):
//!   filled from the buffer by a read at map time unless the map only
//!   writes (`CL_MAP_WRITE_INVALIDATE_REGION`), and written back at unmap
//!   when the map could write. A non-blocking map completes before it
//!   returns, which the specification allows.
//!
//! - An image is mapped into memory of the guest library's laid out with
//!   the image's own row and slice pitches (which the map returns, as the
//!   driver's do), filled by a read of the region, written back at unmap.
//!
//! Events: a map or unmap that makes a read or a write gives that command's
//! event; one that moves nothing gives a marker's. Several mappings of one
//! buffer may be held at once; each pointer is unmapped once.

use std::alloc::Layout;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Mutex;

use crate::opencl::{self, cl_bool, cl_command_queue, cl_event, cl_int, cl_mem, cl_uint};

/// One mapping the application holds.
struct Mapping {
    buffer: usize,
    offset: usize,
    size: usize,
    /// Whether the unmap writes the bytes back (from the mapped pointer).
    write_back: bool,
    /// For an image: the mapped region and the pitches of the mapping.
    image: Option<ImageRange>,
    /// The guest library's memory, if the mapping is in it (`None`: the
    /// pointer is into the heap, or into the application's own memory of a
    /// `CL_MEM_USE_HOST_PTR` buffer).
    _storage: Option<Storage>,
}

/// The part of an image a mapping holds, laid out with `row` and
/// `slice` pitches (the image's own, as the driver's mappings have).
#[derive(Clone, Copy)]
struct ImageRange {
    origin: [usize; 3],
    region: [usize; 3],
    row: usize,
    slice: usize,
}

/// Page-aligned memory of the guest library's.
struct Storage {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: the memory is owned by the mapping and only reached through it
// (or by the application, through the pointer it was given).
unsafe impl Send for Storage {}

impl Storage {
    fn new(size: usize) -> Option<Storage> {
        let layout = Layout::from_size_align(size.max(1), 4096).ok()?;
        // SAFETY: a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        (!ptr.is_null()).then_some(Storage { ptr, layout })
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `Storage::new`.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// The mappings held, by the pointer the application got.
static MAPPINGS: Mutex<Option<HashMap<usize, Mapping>>> = Mutex::new(None);

fn mappings() -> std::sync::MutexGuard<'static, Option<HashMap<usize, Mapping>>> {
    MAPPINGS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The map flags there are.
const MAP_FLAGS: opencl::cl_map_flags =
    opencl::CL_MAP_READ | opencl::CL_MAP_WRITE | opencl::CL_MAP_WRITE_INVALIDATE_REGION;

/// A failed map: `rc` stored in `errcode_ret` (when not NULL), and the
/// NULL pointer the map returns.
///
/// # Safety
/// `errcode_ret` is NULL or writable.
unsafe fn failed(errcode_ret: *mut cl_int, rc: cl_int) -> Option<*mut c_void> {
    if !errcode_ret.is_null() {
        // SAFETY: the caller's guarantee.
        unsafe { *errcode_ret = rc };
    }
    Some(std::ptr::null_mut())
}

/// A marker's event for a map or unmap that moves no bytes.
fn marker(
    queue: cl_command_queue,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    if event.is_null() && num_events_in_wait_list == 0 {
        return opencl::CL_SUCCESS;
    }
    // SAFETY: the application's wait list and event pointer, passed on.
    unsafe {
        opencl::clEnqueueMarkerWithWaitList(queue, num_events_in_wait_list, event_wait_list, event)
    }
}

/// `clEnqueueMapBuffer`.
///
/// # Safety
/// OpenCL's contract: the wait list holds `num_events_in_wait_list` events;
/// `event` and `errcode_ret` are NULL or writable.
#[allow(clippy::too_many_arguments)]
pub unsafe fn map_buffer(
    queue: cl_command_queue,
    buffer: cl_mem,
    _blocking_map: cl_bool,
    map_flags: opencl::cl_map_flags,
    offset: usize,
    size: usize,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
    errcode_ret: *mut cl_int,
) -> Option<*mut c_void> {
    // SAFETY: the caller's contract: `errcode_ret` is NULL or writable.
    let fail = |rc: cl_int| unsafe { failed(errcode_ret, rc) };
    let invalidate = map_flags & opencl::CL_MAP_WRITE_INVALIDATE_REGION != 0;
    if size == 0
        || map_flags & !MAP_FLAGS != 0
        || (invalidate && map_flags & (opencl::CL_MAP_READ | opencl::CL_MAP_WRITE) != 0)
    {
        return fail(opencl::CL_INVALID_VALUE);
    }
    let write_back =
        map_flags & (opencl::CL_MAP_WRITE | opencl::CL_MAP_WRITE_INVALIDATE_REGION) != 0;
    if let Some(e) =
        crate::recorded::host_access_error(buffer, map_flags & opencl::CL_MAP_READ != 0, write_back)
    {
        return fail(e);
    }
    let host = crate::recorded::host_buffer(buffer);
    // In place, when the buffer lives in the heap and no event is involved
    // (not a `CL_MEM_USE_HOST_PTR` buffer: that maps at the application's
    // own pointer).
    if host.is_none() && num_events_in_wait_list == 0 && event.is_null() {
        match crate::fast_paths::heap_range(queue, buffer, offset, size) {
            Some(Ok((heap, at))) => {
                if let Ok(p) = heap.ptr(at, size as u64) {
                    let m = Mapping {
                        buffer: buffer as usize,
                        offset,
                        size,
                        write_back: false,
                        image: None,
                        _storage: None,
                    };
                    mappings()
                        .get_or_insert_with(HashMap::new)
                        .insert(p as usize, m);
                    tracing::trace!(size, "mapped in place");
                    if !errcode_ret.is_null() {
                        // SAFETY: the caller's contract.
                        unsafe { *errcode_ret = opencl::CL_SUCCESS };
                    }
                    return Some(p.cast());
                }
            }
            Some(Err(rc)) => return fail(rc),
            None => {}
        }
    }
    // A `CL_MEM_USE_HOST_PTR` buffer maps at `host_ptr + offset`, as
    // natively; any other into memory of the guest library's.
    let (storage, at) = match host {
        Some(h) => (None, (h.host_ptr + offset) as *mut u8),
        None => match Storage::new(size) {
            Some(s) => {
                let p = s.ptr;
                (Some(s), p)
            }
            None => return fail(opencl::CL_OUT_OF_HOST_MEMORY),
        },
    };
    let rc = if invalidate {
        // The range is the application's to fill: nothing to read. The
        // range must still lie inside the buffer.
        match crate::fast_paths::check_range(buffer, offset, size) {
            opencl::CL_SUCCESS => marker(queue, num_events_in_wait_list, event_wait_list, event),
            rc => rc,
        }
    } else {
        // SAFETY: `at` holds `size` bytes (the storage, or the
        // application's memory of the buffer, by its contract); the wait
        // list and event are the application's.
        unsafe {
            opencl::clEnqueueReadBuffer(
                queue,
                buffer,
                1,
                offset,
                size,
                at.cast(),
                num_events_in_wait_list,
                event_wait_list,
                event,
            )
        }
    };
    if rc != opencl::CL_SUCCESS {
        return fail(rc);
    }
    crate::recorded::name_command(event, rc, opencl::CL_COMMAND_MAP_BUFFER);
    let p = at;
    let m = Mapping {
        buffer: buffer as usize,
        offset,
        size,
        write_back,
        image: None,
        _storage: storage,
    };
    mappings()
        .get_or_insert_with(HashMap::new)
        .insert(p as usize, m);
    tracing::trace!(
        size,
        write_back,
        "mapped through the guest library's memory"
    );
    if !errcode_ret.is_null() {
        // SAFETY: the caller's contract.
        unsafe { *errcode_ret = opencl::CL_SUCCESS };
    }
    Some(p.cast())
}

/// `clEnqueueUnmapMemObject` of a pointer [`map_buffer`] or [`map_image`]
/// gave; any other pointer is `CL_INVALID_VALUE`, as natively.
///
/// # Safety
/// OpenCL's contract, as for [`map_buffer`].
pub unsafe fn unmap_mem_object(
    queue: cl_command_queue,
    memobj: cl_mem,
    mapped_ptr: *mut c_void,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> Option<cl_int> {
    let m = {
        let mut all = mappings();
        let map = all.get_or_insert_with(HashMap::new);
        match map.get(&(mapped_ptr as usize)) {
            None => return Some(opencl::CL_INVALID_VALUE),
            Some(m) if m.buffer != memobj as usize => return Some(opencl::CL_INVALID_VALUE),
            Some(_) => map.remove(&(mapped_ptr as usize)).expect("present"),
        }
    };
    let rc = match (m.write_back, m.image) {
        (true, Some(r)) => {
            // SAFETY: the mapped pointer holds the region with these
            // pitches, written by the application; the write copies them
            // before it returns.
            unsafe {
                opencl::clEnqueueWriteImage(
                    queue,
                    memobj,
                    1,
                    r.origin.as_ptr(),
                    r.region.as_ptr(),
                    r.row,
                    r.slice,
                    mapped_ptr,
                    num_events_in_wait_list,
                    event_wait_list,
                    event,
                )
            }
        }
        (true, None) => {
            // SAFETY: the mapped pointer holds `m.size` bytes, written by
            // the application; the write copies them before it returns.
            unsafe {
                opencl::clEnqueueWriteBuffer(
                    queue,
                    memobj,
                    1,
                    m.offset,
                    m.size,
                    mapped_ptr,
                    num_events_in_wait_list,
                    event_wait_list,
                    event,
                )
            }
        }
        (false, _) => marker(queue, num_events_in_wait_list, event_wait_list, event),
    };
    crate::recorded::name_command(event, rc, opencl::CL_COMMAND_UNMAP_MEM_OBJECT);
    tracing::trace!(size = m.size, rc, "unmapped");
    Some(rc)
}

/// `clEnqueueMapImage`: see the module documentation.
///
/// # Safety
/// OpenCL's contract: `origin` and `region` are NULL or hold three sizes;
/// `image_row_pitch`, `image_slice_pitch`, `event` and `errcode_ret` are
/// NULL or writable; the wait list holds `num_events_in_wait_list` events.
#[allow(clippy::too_many_arguments)]
pub unsafe fn map_image(
    queue: cl_command_queue,
    image: cl_mem,
    _blocking_map: cl_bool,
    map_flags: opencl::cl_map_flags,
    origin: *const usize,
    region: *const usize,
    image_row_pitch: *mut usize,
    image_slice_pitch: *mut usize,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
    errcode_ret: *mut cl_int,
) -> Option<*mut c_void> {
    // SAFETY: the caller's contract: `errcode_ret` is NULL or writable.
    let fail = |rc: cl_int| unsafe { failed(errcode_ret, rc) };
    if let Some(e) = crate::checks::not_an_image(image) {
        return fail(e);
    }
    if map_flags & !MAP_FLAGS != 0
        || origin.is_null()
        || region.is_null()
        || image_row_pitch.is_null()
    {
        return fail(opencl::CL_INVALID_VALUE);
    }
    // SAFETY: OpenCL's contract: three sizes each.
    let (o, r) = unsafe {
        (
            [*origin, *origin.add(1), *origin.add(2)],
            [*region, *region.add(1), *region.add(2)],
        )
    };
    // The object's type, as the guest library learnt it once.
    let Some((_, kind)) = crate::checks::mem_facts(image) else {
        return fail(opencl::CL_INVALID_MEM_OBJECT);
    };
    let layered = matches!(
        kind,
        opencl::CL_MEM_OBJECT_IMAGE3D
            | opencl::CL_MEM_OBJECT_IMAGE2D_ARRAY
            | opencl::CL_MEM_OBJECT_IMAGE1D_ARRAY
    );
    if layered && image_slice_pitch.is_null() {
        return fail(opencl::CL_INVALID_VALUE);
    }
    use crate::images::image_info;
    let (Some(elem), Some(row), Some(slice)) = (
        image_info(image, opencl::CL_IMAGE_ELEMENT_SIZE),
        image_info(image, opencl::CL_IMAGE_ROW_PITCH),
        image_info(image, opencl::CL_IMAGE_SLICE_PITCH),
    ) else {
        return fail(opencl::CL_INVALID_MEM_OBJECT);
    };
    if r.contains(&0) || elem == 0 {
        return fail(opencl::CL_INVALID_VALUE);
    }
    // The mapping's layout, which the read and the write back use: rows
    // the image's row pitch apart, layers (slices of a 3D image, images of
    // a 2D array) its slice pitch apart; the images of a 1D array, its
    // slice pitch apart (the pitches the driver's own mappings have).
    let (row_call, slice_call) = match kind {
        opencl::CL_MEM_OBJECT_IMAGE1D_ARRAY => (slice, slice),
        opencl::CL_MEM_OBJECT_IMAGE3D | opencl::CL_MEM_OBJECT_IMAGE2D_ARRAY => (row, slice),
        _ => (row, 0),
    };
    // The bytes a read or write with these pitches covers (as the
    // specification counts them for the remoted call).
    let size = (r[2] - 1)
        .checked_mul(if slice_call == 0 {
            row_call.saturating_mul(r[1])
        } else {
            slice_call
        })
        .and_then(|x| x.checked_add(r[1].checked_mul(row_call)?));
    let Some(size) = size else {
        return fail(opencl::CL_INVALID_VALUE);
    };
    let write_back =
        map_flags & (opencl::CL_MAP_WRITE | opencl::CL_MAP_WRITE_INVALIDATE_REGION) != 0;
    if let Some(e) =
        crate::recorded::host_access_error(image, map_flags & opencl::CL_MAP_READ != 0, write_back)
    {
        return fail(e);
    }
    let Some(storage) = Storage::new(size) else {
        return fail(opencl::CL_OUT_OF_HOST_MEMORY);
    };
    let at = storage.ptr;
    // A write-only invalidating map still reads: the read checks the
    // region against the image, as the driver's map does, and the program
    // overwrites what it wants.
    // SAFETY: `at` holds `size` bytes, the region laid out with these
    // pitches; the wait list and event are the application's.
    let rc = unsafe {
        opencl::clEnqueueReadImage(
            queue,
            image,
            1,
            o.as_ptr(),
            r.as_ptr(),
            row_call,
            slice_call,
            at.cast(),
            num_events_in_wait_list,
            event_wait_list,
            event,
        )
    };
    if rc != opencl::CL_SUCCESS {
        return fail(rc);
    }
    crate::recorded::name_command(event, rc, opencl::CL_COMMAND_MAP_IMAGE);
    let range = ImageRange {
        origin: o,
        region: r,
        row: row_call,
        slice: slice_call,
    };
    mappings().get_or_insert_with(HashMap::new).insert(
        at as usize,
        Mapping {
            buffer: image as usize,
            offset: 0,
            size,
            write_back,
            image: Some(range),
            _storage: Some(storage),
        },
    );
    // SAFETY: the caller's contract: the pitch outputs are writable (the
    // row pitch's checked above, the slice pitch's where not NULL).
    unsafe {
        *image_row_pitch = row;
        if !image_slice_pitch.is_null() {
            *image_slice_pitch = if layered { slice } else { 0 };
        }
        if !errcode_ret.is_null() {
            *errcode_ret = opencl::CL_SUCCESS;
        }
    }
    tracing::trace!(
        size,
        write_back,
        "image mapped through the guest library's memory"
    );
    Some(at.cast())
}
