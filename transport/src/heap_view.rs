//! A second mapping of a region's buffer heap at a chosen virtual address.
//!
//! Shared virtual memory (OpenCL SVM) needs an allocation to have one
//! address in the application and on the device: pointers stored inside
//! it are followed by both. The worker maps its region's heap a second
//! time at an address that processes rarely use ([`SVM_HINTS`]); a guest
//! process maps the same heap (its own region file, or its VM's BAR) at
//! that same address. Both views share the file's pages, so a byte written
//! through one is seen through the other.

use std::fs::OpenOptions;
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::ptr::NonNull;

use crate::{Arena, Error};

/// Addresses the worker tries, in order, for a region's second heap view:
/// from 32 TiB up, 1 TiB apart. A process's own mappings (the program at
/// 0x55…, libraries and `mmap` near 0x7f…) do not normally reach them.
pub const SVM_HINTS: [usize; 16] = {
    let mut h = [0usize; 16];
    let mut i = 0;
    while i < 16 {
        h[i] = 0x2000_0000_0000 + i * 0x0100_0000_0000;
        i += 1;
    }
    h
};

/// The heap of a region, mapped shared at a fixed address; unmapped when
/// dropped.
#[derive(Debug)]
pub struct HeapView {
    /// Start of the view: page-aligned, exactly the address asked for.
    base: NonNull<u8>,
    /// Bytes mapped: the region's heap size (non-zero).
    len: usize,
}

// SAFETY: the view owns its mapping; the memory is shared memory that other
// processes change anyway, and this type hands out only its address.
unsafe impl Send for HeapView {}
// SAFETY: as for `Send`: shared use reads the two fields only.
unsafe impl Sync for HeapView {}

impl HeapView {
    /// The view's first address.
    pub fn base(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// The view's length in bytes (the heap's size).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a region without a heap has no view.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `[addr, addr + len)` lies inside the view.
    pub fn contains(&self, addr: usize, len: usize) -> bool {
        addr >= self.base()
            && addr
                .checked_add(len)
                .is_some_and(|end| end <= self.base() + self.len)
    }
}

impl Drop for HeapView {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping made in
        // `Arena::map_at`, which nothing else unmaps.
        let _ = unsafe { nix::sys::mman::munmap(self.base.cast(), self.len) };
    }
}

impl Arena {
    /// Maps this arena's bytes (in practice a region's heap) a second
    /// time, at exactly `addr` (a page address), over the region's backing
    /// file. Fails when the arena is empty, or when anything is mapped in
    /// `[addr, addr + size)` (`MAP_FIXED_NOREPLACE`: nothing of this
    /// process is ever replaced).
    pub fn map_at(&self, addr: usize) -> Result<HeapView, Error> {
        let (offset, len) = (self.base, self.size as usize);
        let path = self.shm.path();
        let bad = |reason: String| Error::BadGeometry {
            path: path.to_owned(),
            reason,
        };
        let (Some(at), Some(size)) = (NonZeroUsize::new(addr), NonZeroUsize::new(len)) else {
            return Err(bad("a heap view needs a heap and a non-zero address".into()));
        };
        if !addr.is_multiple_of(4096) || !offset.is_multiple_of(4096) {
            return Err(bad(format!(
                "a heap view needs page alignment (address {addr:#x}, heap offset {offset:#x})"
            )));
        }
        let io = |error: std::io::Error| Error::Io {
            path: path.to_owned(),
            error,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        use nix::sys::mman::{MapFlags, ProtFlags, mmap};
        // SAFETY: a shared mapping of the region's file at an address
        // where nothing is mapped (MAP_FIXED_NOREPLACE fails otherwise), so
        // no memory of this process changes meaning; the file stays open
        // for the call, and the mapping outlives it as mappings do.
        let p = unsafe {
            mmap(
                Some(at),
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED | MapFlags::MAP_FIXED_NOREPLACE,
                file.as_fd(),
                offset as nix::libc::off_t,
            )
        }
        .map_err(|e| io(std::io::Error::from(e)))?;
        let view = HeapView {
            base: p.cast(),
            len,
        };
        // A kernel older than 4.17 takes MAP_FIXED_NOREPLACE as a hint.
        if view.base() != addr {
            return Err(bad(format!(
                "the heap could not be mapped at {addr:#x} (the system placed it at {:#x})",
                view.base()
            )));
        }
        Ok(view)
    }

    /// Maps this arena at the first of `hints` where nothing is mapped
    /// yet (see [`SVM_HINTS`]).
    pub fn map_at_one_of(&self, hints: &[usize]) -> Result<HeapView, Error> {
        let mut last = None;
        for &h in hints {
            match self.map_at(h) {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::BadGeometry {
            path: self.shm.path().to_owned(),
            reason: "no address to map the heap at".into(),
        }))
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use crate::{Region, RegionConfig};

    fn region(heap: u64) -> (tempfile::TempDir, Region) {
        let dir = tempfile::tempdir().unwrap();
        let r = Region::create(
            &dir.path().join("r"),
            &RegionConfig {
                channels: 1,
                heap_size: heap,
                ..RegionConfig::default()
            },
        )
        .unwrap();
        (dir, r)
    }

    #[test]
    fn a_view_at_a_fixed_address_shares_the_heap_bytes() {
        let (_d, r) = region(1 << 20);
        let view = r.heap().map_at_one_of(&SVM_HINTS).unwrap();
        assert!(SVM_HINTS.contains(&view.base()));
        assert_eq!(view.len(), 1 << 20);
        r.heap().write(4096, b"through the region").unwrap();
        // SAFETY: inside the view, which lives for the read.
        let seen = unsafe { std::slice::from_raw_parts((view.base() + 4096) as *const u8, 18) };
        assert_eq!(seen, b"through the region");
        // SAFETY: as above, written through the view.
        unsafe {
            std::ptr::copy_nonoverlapping(b"back".as_ptr(), (view.base() + 8192) as *mut u8, 4)
        };
        let mut back = [0u8; 4];
        r.heap().read(8192, &mut back).unwrap();
        assert_eq!(&back, b"back");
        assert!(view.contains(view.base(), 1 << 20));
        assert!(!view.contains(view.base() + 1, 1 << 20));
        assert!(!view.contains(view.base() - 1, 1));
    }

    #[test]
    fn a_taken_address_is_refused_and_the_next_hint_is_used() {
        let (_d, r) = region(1 << 16);
        let first = r.heap().map_at_one_of(&SVM_HINTS).unwrap();
        // The same address again: taken, so never replaced.
        assert!(r.heap().map_at(first.base()).is_err());
        let second = r.heap().map_at_one_of(&SVM_HINTS).unwrap();
        assert_ne!(first.base(), second.base());
    }

    #[test]
    fn no_heap_no_view() {
        let (_d, r) = region(0);
        assert!(r.heap().map_at(SVM_HINTS[0]).is_err());
    }
}
