//! The shared mapping and every raw access to it.
//!
//! Shared memory may be written at any moment by another process (a guest,
//! possibly hostile), so nothing here ever hands out a Rust reference to
//! plain bytes of the mapping. Bytes move in and out by copying through raw
//! pointers (as rust-vmm's `vm-memory` does), and the only references created
//! are to atomics, which are allowed to change underneath us. Every access is
//! bounds-checked against the mapping's length; this module holds all of the
//! crate's `unsafe` code.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64};

use memmap2::{MmapOptions, MmapRaw};

use crate::Error;

/// Largest piece copied at once when source and destination are
/// misaligned (see [`copy`]).
const COPY_PIECE: usize = 2048;
/// From this size on, glibc copies with non-temporal stores, whatever the
/// alignment (see [`copy`]).
const COPY_STREAMING: usize = 4 << 20;

/// Copies `len` bytes between shared and private memory.
///
/// On some CPUs (AMD Zen among them), glibc's `rep movsb` path for
/// medium-sized copies runs at a tenth of its speed when the destination is
/// not at the same offset modulo 64 as the source — the usual case between
/// a 16-byte-aligned heap buffer and a page-aligned region. Such copies go
/// in pieces small enough for glibc's vector loop. Aligned copies, small
/// ones and very large ones (which glibc streams) go in one call.
///
/// # Safety
/// `src` must be valid for reading and `dst` for writing `len` bytes, and
/// the two ranges must not overlap.
#[inline]
unsafe fn copy(src: *const u8, dst: *mut u8, len: usize) {
    let misaligned = !(dst as usize).wrapping_sub(src as usize).is_multiple_of(64);
    if !misaligned || len <= COPY_PIECE || len >= COPY_STREAMING {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    let mut done = 0;
    while done < len {
        let n = COPY_PIECE.min(len - done);
        // SAFETY: `done + n <= len`: inside both ranges.
        unsafe { std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), n) };
        done += n;
    }
}

/// A shared, mapped file. Cheap to clone; the mapping lives while any clone does.
#[derive(Clone)]
pub struct Shm {
    /// Start and length of the mapping, copied out of `inner` so that the
    /// hot path reaches them without a double indirection.
    base: *mut u8,
    len: usize,
    inner: Arc<Inner>,
}

// SAFETY: `base`/`len` describe the mapping owned by `inner` (an `MmapRaw`,
// itself Send + Sync), which stays alive as long as any clone of `Shm`. All
// accesses through `base` are bounds-checked copies or atomics, which are
// sound from any thread.
unsafe impl Send for Shm {}
// SAFETY: as for `Send`: shared use only performs atomics and raw copies.
unsafe impl Sync for Shm {}

struct Inner {
    /// Owns the mapping; dropping it unmaps. Accessed through `Shm::base`.
    _map: Backing,
    path: PathBuf,
}

/// The memory behind a mapping: the file, mapped shared; under Miri, which
/// cannot map files, zeroed memory of the file's length that this process
/// leaks (enough for the tests, which share a mapping by cloning it).
#[cfg(not(miri))]
type Backing = MmapRaw;
#[cfg(miri)]
type Backing = &'static [std::sync::atomic::AtomicU64];

impl std::fmt::Debug for Shm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shm")
            .field("path", &self.inner.path)
            .field("len", &self.len())
            .finish()
    }
}

impl Shm {
    /// Maps `path` shared and read-write. With `create_len`, the file is
    /// created (or truncated) and sized to that many bytes first.
    pub fn map(path: &Path, create_len: Option<u64>) -> Result<Shm, Error> {
        let io = |error| Error::Io {
            path: path.to_owned(),
            error,
        };
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        if create_len.is_some() {
            opts.create(true).truncate(true);
        }
        let file = opts.open(path).map_err(io)?;
        if let Some(len) = create_len {
            file.set_len(len).map_err(io)?;
        }
        // sysfs `resource2` files report their BAR size through metadata.
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Err(Error::BadGeometry {
                path: path.to_owned(),
                reason: "the file is empty".into(),
            });
        }
        let len = usize::try_from(len).map_err(|_| Error::BadGeometry {
            path: path.to_owned(),
            reason: "the file is larger than the address space".into(),
        })?;
        #[cfg(not(miri))]
        let (map, base) = {
            let map = MmapOptions::new().len(len).map_raw(&file).map_err(io)?;
            let base = map.as_mut_ptr();
            (map, base)
        };
        #[cfg(miri)]
        let (map, base) = {
            let map: Backing = Box::leak(
                (0..len.div_ceil(8))
                    .map(|_| std::sync::atomic::AtomicU64::new(0))
                    .collect(),
            );
            let base = map.as_ptr().cast::<u8>().cast_mut();
            (map, base)
        };
        Ok(Shm {
            base,
            len,
            inner: Arc::new(Inner {
                _map: map,
                path: path.to_owned(),
            }),
        })
    }

    /// The mapped file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (it never is; see [`Shm::map`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    pub(crate) fn check(&self, offset: usize, len: usize, align: usize) {
        let end = offset.checked_add(len);
        assert!(
            end.is_some_and(|e| e <= self.len()) && offset.is_multiple_of(align),
            "shared-memory access {offset}+{len} (align {align}) outside mapping of {}",
            self.len()
        );
    }

    /// The atomic `u64` at `offset`. Offsets come from the validated layout;
    /// an offset outside the mapping or misaligned is a bug and panics.
    #[inline]
    pub fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        self.check(offset, 8, 8);
        // SAFETY: `check` proved offset..offset+8 lies inside the mapping and is
        // 8-aligned (the mapping itself is page-aligned). The mapping lives as
        // long as `self`, which the returned reference borrows. Atomics may be
        // modified concurrently by other processes; that is what they are for,
        // and every bit pattern is a valid u64.
        unsafe { &*(self.base.add(offset) as *const AtomicU64) }
    }

    /// The atomic `u32` at `offset` (see [`Shm::atomic_u64`]).
    pub fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        self.check(offset, 4, 4);
        // SAFETY: as in `atomic_u64`, for 4 bytes with 4-byte alignment.
        unsafe { &*(self.base.add(offset) as *const AtomicU32) }
    }

    /// Copies `dst.len()` bytes out of the mapping, starting at `offset`.
    ///
    /// See [`copy`] for how large copies are made.
    ///
    /// The source may change while it is copied (the peer is untrusted); the
    /// caller validates what it copied, never the shared original.
    #[inline]
    pub fn read(&self, offset: usize, dst: &mut [u8]) {
        self.check(offset, dst.len(), 1);
        // SAFETY: bounds checked above; `dst` is a distinct local buffer, so
        // the ranges cannot overlap. The source bytes may be written
        // concurrently by another process: we only copy them (any bit pattern
        // is a valid u8) and never form a reference to them.
        unsafe { copy(self.base.add(offset), dst.as_mut_ptr(), dst.len()) }
    }

    /// Copies `src` into the mapping at `offset` (see [`copy`]).
    #[inline]
    pub fn write(&self, offset: usize, src: &[u8]) {
        self.check(offset, src.len(), 1);
        // SAFETY: bounds checked above; `src` is process-private memory and
        // cannot overlap the mapping. Writing plain bytes through a raw pointer
        // into shared memory forms no reference to it.
        unsafe { copy(src.as_ptr(), self.base.add(offset), src.len()) }
    }

    /// Sets `len` bytes at `offset` to zero.
    pub fn zero(&self, offset: usize, len: usize) {
        self.check(offset, len, 1);
        // SAFETY: bounds checked above; a raw byte fill forms no reference.
        unsafe { std::ptr::write_bytes(self.base.add(offset), 0, len) }
    }

    /// Raw pointer to `offset..offset+len` for handing memory straight to a
    /// device or a syscall. Bounds-checked; dereferencing it is the caller's
    /// responsibility, and the bytes may change underneath it.
    pub fn ptr(&self, offset: usize, len: usize) -> *mut u8 {
        self.check(offset, len, 1);
        // SAFETY: in bounds per `check`; `add` stays inside the mapping.
        unsafe { self.base.add(offset) }
    }
}

/// One ring's memory inside a mapping — its data area (a power of two in
/// size) and its two counters — validated once, so that the per-message
/// accesses need no further checks: every position is masked into the data
/// area, and words are 8-aligned by construction.
#[derive(Debug, Clone)]
pub(crate) struct RingMem {
    /// Keeps the mapping alive.
    _shm: Shm,
    data: *mut u8,
    mask: usize,
    head: *const AtomicU64,
    tail: *const AtomicU64,
}

// SAFETY: the pointers lie in the mapping kept alive by `_shm`, and are only
// used for atomics and raw copies, as `Shm` itself (which is Send + Sync).
unsafe impl Send for RingMem {}
// SAFETY: as for `Send`.
unsafe impl Sync for RingMem {}

impl RingMem {
    /// The ring with data at `data..data+size` and counters at `head` and
    /// `tail`. Panics if any of them lies outside the mapping or is
    /// misaligned, or if `size` is not a power of two of at least 64.
    pub(crate) fn new(shm: &Shm, data: usize, size: usize, head: usize, tail: usize) -> RingMem {
        assert!(size.is_power_of_two() && size >= 64, "ring size {size}");
        shm.check(data, size, 8);
        shm.check(head, 8, 8);
        shm.check(tail, 8, 8);
        RingMem {
            data: shm.ptr(data, size),
            mask: size - 1,
            head: shm.atomic_u64(head),
            tail: shm.atomic_u64(tail),
            _shm: shm.clone(),
        }
    }

    /// The producer's counter.
    #[inline(always)]
    pub(crate) fn head(&self) -> &AtomicU64 {
        // SAFETY: validated in `new`; the mapping outlives `self`.
        unsafe { &*self.head }
    }

    /// The consumer's counter.
    #[inline(always)]
    pub(crate) fn tail(&self) -> &AtomicU64 {
        // SAFETY: validated in `new`; the mapping outlives `self`.
        unsafe { &*self.tail }
    }

    /// The 8-byte word at free-running position `pos` (rounded down to 8).
    #[inline(always)]
    pub(crate) fn word(&self, pos: u64) -> &AtomicU64 {
        let off = (pos as usize) & self.mask & !7;
        // SAFETY: `off + 8 <= size` (the size is a multiple of 8) and `off`
        // is 8-aligned in an 8-aligned data area inside the mapping.
        unsafe { &*(self.data.add(off) as *const AtomicU64) }
    }

    /// Hints the cache to fetch the line holding free-running position
    /// `pos` (rounded into the ring). A consumer waiting for a message calls
    /// it for the line after the one it polls: a message spanning both then
    /// arrives with two transfers at once instead of one after the other.
    #[inline(always)]
    pub(crate) fn prefetch(&self, pos: u64) {
        let off = (pos as usize) & self.mask;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `off < size`, so the address lies in the data area (a
        // prefetch would not fault even outside it, and reads nothing).
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                self.data.add(off).cast::<i8>(),
            );
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = off;
    }

    /// Copies `src` (at most the ring's size) to position `pos`, wrapping.
    #[inline(always)]
    pub(crate) fn write(&self, pos: u64, src: &[u8]) {
        assert!(src.len() <= self.mask + 1);
        let off = (pos as usize) & self.mask;
        if src.len() <= SMALL && off + src.len() <= self.mask + 1 && off.is_multiple_of(8) {
            // SAFETY: inside the data area, 8-aligned at `off`.
            unsafe { small_write(src, self.data.add(off)) };
            return;
        }
        let first = src.len().min(self.mask + 1 - off);
        // SAFETY: `off + first <= size` and `src.len() - first <= size`: both
        // pieces lie in the data area; `src` is private memory.
        unsafe {
            copy(src.as_ptr(), self.data.add(off), first);
            copy(src.as_ptr().add(first), self.data, src.len() - first);
        }
    }

    /// Copies `dst.len()` bytes (at most the ring's size) from position
    /// `pos`, wrapping. The source may change underneath: only copied.
    #[inline(always)]
    pub(crate) fn read(&self, pos: u64, dst: &mut [u8]) {
        assert!(dst.len() <= self.mask + 1);
        let off = (pos as usize) & self.mask;
        if dst.len() <= SMALL && off + dst.len() <= self.mask + 1 && off.is_multiple_of(8) {
            // SAFETY: inside the data area, 8-aligned at `off`.
            unsafe { small_read(self.data.add(off), dst) };
            return;
        }
        let first = dst.len().min(self.mask + 1 - off);
        // SAFETY: as in `write`, with `dst` private memory.
        unsafe {
            copy(self.data.add(off), dst.as_mut_ptr(), first);
            copy(self.data, dst.as_mut_ptr().add(first), dst.len() - first);
        }
    }
}

/// Messages up to this size are copied inline, word by word.
const SMALL: usize = 128;

/// Copies `dst.len() <= SMALL` bytes from 8-aligned shared memory, a
/// volatile word at a time, then the last bytes one by one.
///
/// # Safety
/// `src` must be 8-aligned and valid for reading `dst.len()` bytes.
#[inline(always)]
unsafe fn small_read(src: *const u8, dst: &mut [u8]) {
    let words = dst.len() / 8;
    let d = dst.as_mut_ptr();
    for i in 0..words {
        // SAFETY: `src + 8i` is 8-aligned and in range; `d + 8i` is in
        // range of the private buffer (written unaligned).
        unsafe {
            let w = std::ptr::read_volatile(src.add(i * 8).cast::<u64>());
            std::ptr::write_unaligned(d.add(i * 8).cast::<u64>(), w);
        }
    }
    for i in words * 8..dst.len() {
        // SAFETY: in range.
        unsafe { *d.add(i) = std::ptr::read_volatile(src.add(i)) };
    }
}

/// Copies `src.len() <= SMALL` bytes into 8-aligned shared memory, a
/// volatile word at a time, then the last bytes one by one.
///
/// # Safety
/// `dst` must be 8-aligned and valid for writing `src.len()` bytes.
#[inline(always)]
unsafe fn small_write(src: &[u8], dst: *mut u8) {
    let words = src.len() / 8;
    let s = src.as_ptr();
    for i in 0..words {
        // SAFETY: as in `small_read`, the other way round.
        unsafe {
            let w = std::ptr::read_unaligned(s.add(i * 8).cast::<u64>());
            std::ptr::write_volatile(dst.add(i * 8).cast::<u64>(), w);
        }
    }
    for i in words * 8..src.len() {
        // SAFETY: in range.
        unsafe { std::ptr::write_volatile(dst.add(i), *s.add(i)) };
    }
}
