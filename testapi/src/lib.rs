//! `libava_testapi.so`: a small C-ABI library that the remoting tests call
//! both directly and through the generated guest library and worker
//! dispatcher. Its functions are described in `testapi.lapis`.
//!
//! Objects are heap cells handed out as opaque pointers, as a C library
//! would. Pending asynchronous reads are completed only by `ta_sync`, so a
//! remoting that returned the data early would be caught.

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_void};
use std::sync::Mutex;

/// Status codes.
pub const TA_OK: i32 = 0;
/// An unknown or released object.
pub const TA_INVALID_HANDLE: i32 = -1;
/// A NULL or out-of-range argument.
pub const TA_INVALID_VALUE: i32 = -2;

struct Obj {
    value: i32,
    refs: u32,
    pending: Vec<(usize, usize)>,
}

/// Live objects (pointer value → object), so that a stale pointer is an
/// error, not a crash.
static OBJECTS: Mutex<Option<HashMap<usize, Box<Obj>>>> = Mutex::new(None);

fn with_obj<R>(obj: *mut c_void, f: impl FnOnce(&mut Obj) -> R) -> Result<R, i32> {
    let mut g = OBJECTS.lock().unwrap_or_else(|p| p.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    map.get_mut(&(obj as usize))
        .map(|o| f(o))
        .ok_or(TA_INVALID_HANDLE)
}

fn status(r: Result<i32, i32>) -> i32 {
    r.unwrap_or_else(|e| e)
}

/// Creates an object holding `seed`.
///
/// # Safety
/// `status` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ta_create(seed: i32, status: *mut i32) -> *mut c_void {
    let obj = Box::new(Obj {
        value: seed,
        refs: 1,
        pending: Vec::new(),
    });
    let ptr = &*obj as *const Obj as *mut c_void;
    let mut g = OBJECTS.lock().unwrap_or_else(|p| p.into_inner());
    g.get_or_insert_with(HashMap::new).insert(ptr as usize, obj);
    if !status.is_null() {
        // SAFETY: the caller passes NULL or a writable pointer.
        unsafe { *status = TA_OK };
    }
    ptr
}

/// Adds a reference.
#[unsafe(no_mangle)]
pub extern "C" fn ta_retain(obj: *mut c_void) -> i32 {
    status(with_obj(obj, |o| {
        o.refs += 1;
        TA_OK
    }))
}

/// Drops a reference; frees the object at zero.
#[unsafe(no_mangle)]
pub extern "C" fn ta_release(obj: *mut c_void) -> i32 {
    let mut g = OBJECTS.lock().unwrap_or_else(|p| p.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    match map.get_mut(&(obj as usize)) {
        None => TA_INVALID_HANDLE,
        Some(o) => {
            o.refs -= 1;
            if o.refs == 0 {
                map.remove(&(obj as usize));
            }
            TA_OK
        }
    }
}

/// The object's value.
///
/// # Safety
/// `value` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ta_get(obj: *mut c_void, value: *mut i32) -> i32 {
    if value.is_null() {
        return TA_INVALID_VALUE;
    }
    // SAFETY: checked non-NULL; the caller passes a writable pointer.
    status(with_obj(obj, |o| unsafe {
        *value = o.value;
        TA_OK
    }))
}

/// Adds `delta` to the value.
#[unsafe(no_mangle)]
pub extern "C" fn ta_add(obj: *mut c_void, delta: i32) -> i32 {
    status(with_obj(obj, |o| {
        o.value = o.value.wrapping_add(delta);
        TA_OK
    }))
}

/// `result = value * sum(values[..n])`.
///
/// # Safety
/// `values` must be readable for `n` elements, `result` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ta_dot(
    obj: *mut c_void,
    values: *const i32,
    n: usize,
    result: *mut i64,
) -> i32 {
    if (values.is_null() && n > 0) || result.is_null() {
        return TA_INVALID_VALUE;
    }
    let vals = if n == 0 {
        &[][..]
    } else {
        // SAFETY: the caller guarantees `values` holds `n` elements.
        unsafe { std::slice::from_raw_parts(values, n) }
    };
    let sum: i64 = vals.iter().map(|&v| i64::from(v)).sum();
    // SAFETY: checked non-NULL above.
    status(with_obj(obj, |o| unsafe {
        *result = sum * i64::from(o.value);
        TA_OK
    }))
}

/// Multiplies `n` floats in place by `factor`.
///
/// # Safety
/// `data` must be valid for `n` elements.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ta_scale(data: *mut f32, n: usize, factor: f32) -> i32 {
    if data.is_null() {
        return TA_INVALID_VALUE;
    }
    // SAFETY: the caller guarantees `data` holds `n` elements.
    for x in unsafe { std::slice::from_raw_parts_mut(data, n) } {
        *x *= factor;
    }
    TA_OK
}

/// FNV-1a over `n` blobs.
///
/// # Safety
/// `blobs[i]` must be readable for `sizes[i]` bytes; `hash` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ta_hash(
    blobs: *const *const c_void,
    sizes: *const usize,
    n: usize,
    hash: *mut u64,
) -> i32 {
    if blobs.is_null() || sizes.is_null() || hash.is_null() {
        return TA_INVALID_VALUE;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..n {
        // SAFETY: the caller guarantees both arrays hold `n` elements and
        // each blob its size.
        let (p, len) = unsafe { (*blobs.add(i) as *const u8, *sizes.add(i)) };
        if p.is_null() {
            return TA_INVALID_VALUE;
        }
        // SAFETY: checked non-NULL; the caller guarantees `len` bytes.
        let blob = unsafe { std::slice::from_raw_parts(p, len) };
        for &b in blob {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x100_0000_01b3);
    }
    // SAFETY: checked non-NULL.
    unsafe { *hash = h };
    TA_OK
}

/// Joins `n` strings with '+' into `out` (size-query-then-fill).
///
/// # Safety
/// `parts` must hold `n` NUL-terminated strings; `out` `size` writable
/// bytes or NULL; `size_ret` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ta_join(
    parts: *const *const c_char,
    n: usize,
    size: usize,
    out: *mut c_char,
    size_ret: *mut usize,
) -> i32 {
    if parts.is_null() {
        return TA_INVALID_VALUE;
    }
    let mut joined = Vec::new();
    for i in 0..n {
        // SAFETY: the caller guarantees `n` valid strings.
        let s = unsafe { CStr::from_ptr(*parts.add(i)) };
        if i > 0 {
            joined.push(b'+');
        }
        joined.extend_from_slice(s.to_bytes());
    }
    joined.push(0);
    if !size_ret.is_null() {
        // SAFETY: non-NULL, writable by contract.
        unsafe { *size_ret = joined.len() };
    }
    if !out.is_null() {
        if size < joined.len() {
            return TA_INVALID_VALUE;
        }
        // SAFETY: `out` has `size >= joined.len()` writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(joined.as_ptr(), out.cast(), joined.len()) };
    }
    TA_OK
}

/// Queues a read of `n` values (`value * 1000 + i`) into `dst`, completed by
/// `ta_sync`.
#[unsafe(no_mangle)]
pub extern "C" fn ta_read_async(obj: *mut c_void, dst: *mut i32, n: usize) -> i32 {
    if dst.is_null() {
        return TA_INVALID_VALUE;
    }
    status(with_obj(obj, |o| {
        o.pending.push((dst as usize, n));
        TA_OK
    }))
}

/// Completes the object's pending reads.
#[unsafe(no_mangle)]
pub extern "C" fn ta_sync(obj: *mut c_void) -> i32 {
    status(with_obj(obj, |o| {
        for (dst, n) in o.pending.drain(..) {
            for i in 0..n {
                // SAFETY: `ta_read_async`'s caller promised `dst` stays
                // valid for `n` elements until this call.
                unsafe {
                    *(dst as *mut i32).add(i) = o.value.wrapping_mul(1000).wrapping_add(i as i32)
                };
            }
        }
        TA_OK
    }))
}

/// The notification type of `ta_visit`.
pub type TaNotify = Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>;

/// Calls `notify(obj, user_data)` if the value is even.
///
/// # Safety
/// `notify` must be NULL or safe to call with `user_data`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ta_visit(
    obj: *mut c_void,
    notify: TaNotify,
    user_data: *mut c_void,
) -> i32 {
    let even = match with_obj(obj, |o| o.value % 2 == 0) {
        Ok(e) => e,
        Err(e) => return e,
    };
    if even && let Some(f) = notify {
        // SAFETY: calling the caller's callback as the API promises.
        unsafe { f(obj, user_data) };
    }
    TA_OK
}

/// Sleeps for `ms` milliseconds.
#[unsafe(no_mangle)]
pub extern "C" fn ta_sleep(ms: u32) -> i32 {
    std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
    TA_OK
}

/// Aborts the process, as a driver that hits a fatal error does.
#[unsafe(no_mangle)]
pub extern "C" fn ta_abort() -> i32 {
    std::process::abort()
}

/// A host-only debugging aid.
#[unsafe(no_mangle)]
pub extern "C" fn ta_debug_dump(obj: *mut c_void) -> i32 {
    status(with_obj(obj, |o| {
        eprintln!("value {}", o.value);
        TA_OK
    }))
}
