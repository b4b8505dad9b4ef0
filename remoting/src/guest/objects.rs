//! Handles as objects in the guest's memory, for APIs whose handles must
//! be dispatchable (an OpenCL installable client driver: the ICD loader
//! reads the first word of every handle as its dispatch table).
//!
//! Without [`enable`], a handle is its id on the wire and every function
//! here is the identity. Once a guest library enables objects, each id the
//! application receives is an [`Object`] `{ dispatch, id }` in a slab the
//! library owns; arguments translate back to ids at the call boundary
//! ([`id_of`], a range check and one load), and ids the worker returns
//! become objects ([`object_of`], one per id, so a handle compares equal to
//! itself across calls as natively). A value that is not one of the
//! objects (a garbage pointer, an id that hand-written code kept) passes
//! through unchanged and the worker refuses or accepts it as before.
//!
//! References are mirrored from the application's retains and releases
//! (the rules of the worker's handle table: a new id starts with one, a
//! known id returned again adds none); an object whose count reaches zero
//! is poisoned (its id no longer translates) and its slot is reused only
//! after many others, so a use after release fails as invalid in practice.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

use crate::{GUEST_ID_TAG, ID_TAG_MASK, WORKER_ID_TAG};

/// What the application holds for a handle once objects are enabled.
#[repr(C)]
pub struct Object {
    /// The dispatch table (the ICD's `cl_icd_dispatch`). Written before the
    /// object is handed out; never changed afterwards.
    dispatch: AtomicUsize,
    /// The id on the wire; [`DEAD`] once released.
    id: AtomicU64,
}

/// The id of a released object: no tag, so no table knows it.
const DEAD: u64 = u64::MAX;

/// Objects per slab chunk (1 MiB of address space, zero pages until used).
const CHUNK: usize = 1 << 16;

/// At most this many chunks (4 M live objects).
const MAX_CHUNKS: usize = 64;

/// Free slots wait in line until this many are free, so that a slot is
/// not handed out again right after its object was released.
const REUSE_AFTER: usize = 4096;

/// The dispatch table every object starts with; 0 while disabled.
static DISPATCH: AtomicUsize = AtomicUsize::new(0);

/// Base address of each chunk (0: not yet allocated). Chunks are only ever
/// added, so a reader may scan them without the lock.
static CHUNKS: [AtomicUsize; MAX_CHUNKS] = [const { AtomicUsize::new(0) }; MAX_CHUNKS];

/// Bookkeeping behind the lock: ids to live objects and their counts.
struct Table {
    /// Live objects by id: the object's address and its reference count.
    by_id: HashMap<u64, (usize, u32)>,
    /// Released slots, oldest first.
    free: VecDeque<usize>,
    /// Chunks allocated.
    chunks: usize,
    /// Slots of the newest chunk handed out so far.
    used: usize,
}

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(|| {
    Mutex::new(Table {
        by_id: HashMap::new(),
        free: VecDeque::new(),
        chunks: 0,
        used: CHUNK,
    })
});

/// Makes handles objects whose first word is `dispatch`, from now on.
/// Idempotent; call it before the application receives any handle.
pub fn enable(dispatch: *const std::ffi::c_void) {
    DISPATCH.store(dispatch as usize, Ordering::Release);
}

/// Whether handles are objects.
pub fn enabled() -> bool {
    DISPATCH.load(Ordering::Relaxed) != 0
}

/// The object at `handle` if it is one of the slab's slots.
fn slot(handle: usize) -> Option<&'static Object> {
    let size = std::mem::size_of::<Object>();
    for c in &CHUNKS {
        let base = c.load(Ordering::Acquire);
        if base == 0 {
            return None;
        }
        if handle >= base && handle < base + CHUNK * size && (handle - base).is_multiple_of(size) {
            // SAFETY: `handle` is the address of a slot of a chunk that is
            // never freed (leaked at allocation), properly aligned because
            // its offset is a multiple of the object size.
            return Some(unsafe { &*(handle as *const Object) });
        }
    }
    None
}

/// The wire id of an application's handle: the object's id, 0 for NULL,
/// the value itself when it is not an object (or objects are disabled).
#[inline]
pub fn id_of(handle: usize) -> u64 {
    if handle == 0 || !enabled() {
        return handle as u64;
    }
    match slot(handle) {
        Some(o) => o.id.load(Ordering::Acquire),
        None => handle as u64,
    }
}

/// Whether `v` has the shape of an id on the wire.
fn is_id(v: u64) -> bool {
    matches!(v & ID_TAG_MASK, WORKER_ID_TAG | GUEST_ID_TAG)
}

/// The application's handle for wire id `id`: the object already made for
/// it, or a new one (with one reference). NULL and values that are not ids
/// pass through unchanged, as everything does while objects are disabled.
pub fn object_of(id: u64) -> usize {
    if !enabled() || !is_id(id) {
        return id as usize;
    }
    let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(addr, _)) = t.by_id.get(&id) {
        return addr;
    }
    let Some(addr) = t.take_slot() else {
        tracing::error!("no room for another handle object: the id passes as it is");
        return id as usize;
    };
    // SAFETY: `take_slot` returned a slot address of a leaked chunk.
    let o = unsafe { &*(addr as *const Object) };
    o.dispatch
        .store(DISPATCH.load(Ordering::Acquire), Ordering::Relaxed);
    o.id.store(id, Ordering::Release);
    t.by_id.insert(id, (addr, 1));
    addr
}

impl Table {
    fn take_slot(&mut self) -> Option<usize> {
        if self.free.len() > REUSE_AFTER {
            return self.free.pop_front();
        }
        if self.used == CHUNK {
            if self.chunks == MAX_CHUNKS {
                return self.free.pop_front();
            }
            let chunk: Vec<Object> = (0..CHUNK)
                .map(|_| Object {
                    dispatch: AtomicUsize::new(0),
                    id: AtomicU64::new(DEAD),
                })
                .collect();
            let base = Box::leak(chunk.into_boxed_slice()).as_ptr() as usize;
            CHUNKS[self.chunks].store(base, Ordering::Release);
            self.chunks += 1;
            self.used = 0;
        }
        let base = CHUNKS[self.chunks - 1].load(Ordering::Relaxed);
        let addr = base + self.used * std::mem::size_of::<Object>();
        self.used += 1;
        Some(addr)
    }
}

/// Mirrors a retain of the application's `handle` (nothing for values
/// that are not live objects).
pub fn retain(handle: usize) {
    if !enabled() {
        return;
    }
    let Some(o) = slot(handle) else { return };
    let id = o.id.load(Ordering::Acquire);
    let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = t.by_id.get_mut(&id) {
        e.1 = e.1.saturating_add(1);
    }
}

/// Mirrors a release of the application's `handle`; the object is
/// poisoned when its count reaches zero.
pub fn release(handle: usize) {
    if !enabled() {
        return;
    }
    let Some(o) = slot(handle) else { return };
    let id = o.id.load(Ordering::Acquire);
    let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(e) = t.by_id.get_mut(&id) else {
        return;
    };
    e.1 -= 1;
    if e.1 == 0 {
        t.by_id.remove(&id);
        o.id.store(DEAD, Ordering::Release);
        t.free.push_back(handle);
    }
}

/// Replaces, in place, each of the `n` words at `words` that is a wire id
/// by the application's object for it (handles a call returned in an
/// output buffer). Other words stay as they are.
///
/// # Safety
/// `words` must be NULL or valid for reading and writing `n` possibly
/// unaligned 8-byte words.
pub unsafe fn objects_in_place(words: *mut u8, n: usize) {
    if words.is_null() || !enabled() {
        return;
    }
    for i in 0..n {
        // SAFETY: the caller guarantees `n` words are readable and writable.
        let p = unsafe { words.add(i * 8) }.cast::<u64>();
        // SAFETY: as above; unaligned access because the buffer is the
        // application's and may have any alignment.
        let v = unsafe { p.read_unaligned() };
        if is_id(v) {
            // SAFETY: as above.
            unsafe { p.write_unaligned(object_of(v) as u64) };
        }
    }
}

/// A copy of the `len` bytes at `data` in which every aligned 8-byte word
/// that is a live object is replaced by its id (handles inside an input:
/// handle arrays, property lists, structs, kernel arguments); `None` when
/// nothing needs replacing, so the caller sends the bytes as they are.
///
/// # Safety
/// `data` must be NULL or valid for reading `len` bytes.
pub unsafe fn ids_in_copy(data: *const u8, len: usize) -> Option<Vec<u8>> {
    if data.is_null() || !enabled() {
        return None;
    }
    let mut out: Option<Vec<u8>> = None;
    for i in 0..len / 8 {
        // SAFETY: the caller guarantees `len` bytes are readable.
        let v = unsafe { data.add(i * 8).cast::<u64>().read_unaligned() };
        if v == 0 {
            continue;
        }
        if let Some(o) = slot(v as usize) {
            let id = o.id.load(Ordering::Acquire);
            let buf = out.get_or_insert_with(|| {
                // SAFETY: as above.
                unsafe { std::slice::from_raw_parts(data, len) }.to_vec()
            });
            buf[i * 8..i * 8 + 8].copy_from_slice(&id.to_ne_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test owns the process-global table (enabling is for good).
    #[test]
    fn objects_translate_both_ways_and_die_at_zero() {
        static TABLE_WORD: usize = 0x1234;
        let id = |n: u64| WORKER_ID_TAG | n;
        // Disabled: the identity.
        assert_eq!(id_of(0x5000), 0x5000);
        assert_eq!(object_of(id(1)), id(1) as usize);
        enable(&TABLE_WORD as *const usize as *const std::ffi::c_void);
        let a = object_of(id(1));
        assert_ne!(a, id(1) as usize);
        assert_eq!(object_of(id(1)), a, "one object per id");
        // SAFETY: `a` is an object this module made.
        let o = unsafe { &*(a as *const Object) };
        assert_eq!(
            o.dispatch.load(Ordering::Relaxed),
            &TABLE_WORD as *const usize as usize
        );
        assert_eq!(id_of(a), id(1));
        assert_eq!(id_of(0), 0);
        assert_eq!(id_of(0x5000), 0x5000, "not an object: as it is");
        assert_eq!(object_of(0), 0);
        assert_eq!(object_of(7), 7, "not an id: as it is");
        let b = object_of(GUEST_ID_TAG | 9);
        assert_eq!(b, a + std::mem::size_of::<Object>());

        // Words in buffers, both ways.
        let mut out = [0u64, id(1), 42, GUEST_ID_TAG | 9];
        // SAFETY: `out` holds 4 words.
        unsafe { objects_in_place(out.as_mut_ptr().cast(), 4) };
        assert_eq!(out, [0, a as u64, 42, b as u64]);
        // SAFETY: `out` holds 32 bytes.
        let back = unsafe { ids_in_copy(out.as_ptr().cast(), 32) }.expect("objects inside");
        let back: Vec<u64> = back
            .chunks(8)
            .map(|w| u64::from_ne_bytes(w.try_into().unwrap()))
            .collect();
        assert_eq!(back, [0, id(1), 42, GUEST_ID_TAG | 9]);
        let plain = [1u64, 2, 3];
        // SAFETY: `plain` holds 24 bytes.
        assert!(unsafe { ids_in_copy(plain.as_ptr().cast(), 24) }.is_none());

        // Two references: the first release keeps the object.
        retain(a);
        release(a);
        assert_eq!(id_of(a), id(1));
        release(a);
        assert_eq!(id_of(a), DEAD, "released: no longer translates");
        release(a);
        let c = object_of(id(1));
        assert_ne!(c, a, "a slot is not reused at once");
        assert_eq!(id_of(c), id(1));
    }
}
